"""RpcObserver on a bare gRPC server: the final status code of calls that raise, abort or set a code."""

from __future__ import annotations

import logging
from concurrent import futures

import grpc
import pytest
from prometheus_client import CollectorRegistry

from queue_service.api.observe import RpcObserver
from queue_service.metrics import ServiceMetrics


def _raise(request, context):
    raise RuntimeError("boom")


def _set_code(request, context):
    context.set_code(grpc.StatusCode.RESOURCE_EXHAUSTED)
    context.set_details("slow down")
    return b""


def _stream_then_abort(request, context):
    yield b"one"
    context.abort(grpc.StatusCode.ABORTED, "changed concurrently")


def _echo(request, context):
    return request


HANDLERS = {
    "Raise": grpc.unary_unary_rpc_method_handler(_raise),
    "SetCode": grpc.unary_unary_rpc_method_handler(_set_code),
    "StreamThenAbort": grpc.unary_stream_rpc_method_handler(_stream_then_abort),
    "Echo": grpc.unary_unary_rpc_method_handler(_echo),
}


class Refuse(grpc.ServerInterceptor):
    """Stands for an inner interceptor (authentication) that ends calls before the servicer."""

    def intercept_service(self, continuation, handler_call_details):
        if handler_call_details.method.endswith("/Echo") and ("x-refuse", "1") in (
            handler_call_details.invocation_metadata or ()
        ):

            def refuse(request, context):
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "no")

            return grpc.unary_unary_rpc_method_handler(refuse)
        return continuation(handler_call_details)


@pytest.fixture
def observed():
    registry = CollectorRegistry()
    metrics = ServiceMetrics(registry)
    server = grpc.server(futures.ThreadPoolExecutor(4), interceptors=[RpcObserver(metrics), Refuse()])
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Probe", HANDLERS)])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")

    def count(method: str, code: str, rpc_type: str = "unary") -> float:
        labels = {"grpc_service": "test.Probe", "grpc_method": method, "grpc_type": rpc_type, "grpc_code": code}
        return registry.get_sample_value("grpc_server_handled_total", labels) or 0.0

    yield channel, count
    channel.close()
    server.stop(0)


def test_final_codes(observed, caplog):
    channel, count = observed
    caplog.set_level(logging.DEBUG, logger="queue_service.rpc")
    with pytest.raises(grpc.RpcError) as raised:
        channel.unary_unary("/test.Probe/Raise")(b"")
    with pytest.raises(grpc.RpcError) as set_code:
        channel.unary_unary("/test.Probe/SetCode")(b"")
    with pytest.raises(grpc.RpcError) as refused:
        channel.unary_unary("/test.Probe/Echo")(b"", metadata=[("x-refuse", "1")])
    stream = channel.unary_stream("/test.Probe/StreamThenAbort")(b"")
    assert next(stream) == b"one"
    with pytest.raises(grpc.RpcError) as aborted:
        next(stream)
    assert channel.unary_unary("/test.Probe/Echo")(b"hi") == b"hi"

    assert raised.value.code() == grpc.StatusCode.UNKNOWN
    assert set_code.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert aborted.value.code() == grpc.StatusCode.ABORTED
    assert count("Raise", "UNKNOWN") == 1
    assert count("SetCode", "RESOURCE_EXHAUSTED") == 1
    assert count("Echo", "UNAUTHENTICATED") == 1
    assert count("Echo", "OK") == 1
    assert count("StreamThenAbort", "ABORTED", "server_stream") == 1

    # A server-side failure logs at error level with its context; the others at debug.
    errors = [
        record for record in caplog.records if record.levelno == logging.ERROR and record.name == "queue_service.rpc"
    ]
    assert [record.fields["method"] for record in errors] == ["/test.Probe/Raise"]
    assert errors[0].fields["code"] == "UNKNOWN"
    debug = {
        record.fields["method"]: record.fields["code"] for record in caplog.records if record.levelno == logging.DEBUG
    }
    assert debug["/test.Probe/SetCode"] == "RESOURCE_EXHAUSTED"

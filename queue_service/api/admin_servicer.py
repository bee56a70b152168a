"""AdminService: translates admin requests into core calls and results into responses."""

from __future__ import annotations

from jobqueue.v1 import admin_service_pb2_grpc

from queue_service.api.errors import translate_all
from queue_service.core.errors import Unimplemented


@translate_all
class AdminServicer(admin_service_pb2_grpc.AdminServiceServicer):
    # The recovery scheduler provides these two.
    def TriggerRecovery(self, request, context):
        raise Unimplemented("TriggerRecovery is not implemented yet")

    def GetRecoveryStatus(self, request, context):
        raise Unimplemented("GetRecoveryStatus is not implemented yet")

"""Client library for the job retry and recovery service."""

"""gRPC plumbing shared by every renkei server and client."""

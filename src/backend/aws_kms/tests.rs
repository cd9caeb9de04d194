//! LocalStack-backed tests (written next).

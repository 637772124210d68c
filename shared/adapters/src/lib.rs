//! Implementations of the ports: DynamoDB and SQS for deployments, memory for the embedded local
//! stack and fast tests.

pub mod dynamodb;
pub mod http;
pub mod media;
pub mod memory;
pub mod sqs;

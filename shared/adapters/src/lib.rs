//! Implementations of the ports: DynamoDB and SQS for deployments, memory for the embedded local
//! stack and fast tests.
//!
//! The AWS ones are the default feature `aws`: without it (the fuzz targets, which build every
//! dependency instrumented) the crate builds without the AWS SDK.

#[cfg(feature = "aws")]
pub mod dynamodb;
pub mod http;
pub mod media;
pub mod memory;
#[cfg(feature = "aws")]
pub mod sqs;

//! The baseline of the cold-start benchmark: the smallest `lambda_http` function, built with the
//! same release profile as ours.

use std::convert::Infallible;

use lambda_http::{Error, Request, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(|_: Request| async {
        Ok::<_, Infallible>("hello")
    }))
    .await
}

//! The stand-in API server of the console's tests, as a program for the browser tests:
//! serves on a free loopback port and prints its URL on the first line of stdout.

#[path = "../tests/support/standin.rs"]
mod standin;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let url = standin::StandIn::default().serve().await;
    println!("{url}");
    std::future::pending::<()>().await;
}

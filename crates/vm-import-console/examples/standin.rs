//! The stand-ins of the console's tests, as a program for the browser tests: the API
//! server and the metrics query API, each on a free loopback port. It prints the API
//! server's URL on the first line of stdout and the metrics API's on the second.

#[path = "../tests/support/standin.rs"]
mod standin;

#[path = "../tests/support/vsphere.rs"]
mod vsphere;

#[path = "../tests/support/prometheus.rs"]
mod prometheus;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let url = standin::StandIn::default().serve().await;
    let metrics = prometheus::Prometheus::default().serve().await;
    println!("{url}");
    println!("{metrics}");
    std::future::pending::<()>().await;
}

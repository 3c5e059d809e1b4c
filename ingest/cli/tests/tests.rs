//! The `statmsg` binary's integration tests, in one target (ripgrep's layout): a module per
//! area, the helpers of `common` compiled once. Most run the built binary
//! (`CARGO_BIN_EXE_statmsg`); those marked `#[ignore]` need the servers of `deploy/local/stack`
//! and run in `.ci/run` (`cargo test --workspace -- --include-ignored`).

mod common;

// `statmsg analyze` as users run it, on the committed sample.
mod cli_analyze;
// `statmsg report` against the simulator's truth.
mod cli_report;
// Stopping by signal when nobody reads the log any more.
#[cfg(unix)]
mod cli_signals;
// The collector against real Kafka under the faults a site server sees.
mod e2e_collector;
// Dead letters on the real stack: listed and replayed.
mod e2e_dlq;
// `kill -9` of the collector and the consumer mid-stream: nothing lost, nothing doubled.
mod e2e_faults;
// The Grafana alert rules and dashboards, proven on pipeline-written data.
mod e2e_grafana;
// A consumer whose InfluxDB user may not create the database says so and stops.
mod e2e_influx_rights;
// End to end through Kafka and InfluxDB, counted.
mod e2e_kafka_influxdb;
// One of two consumers killed mid-run: the other takes its sites over.
mod e2e_rebalance;
// `statmsg report --influx` on a deployed pipeline equals the report from the logs.
mod e2e_report;
// SASL_SSL to Kafka and HTTPS to InfluxDB, on servers of the test's own.
mod e2e_secure_transport;
// `silent`: collectors' heartbeats through Kafka, one stopped.
mod e2e_silent;
// The sync tracker inside the consumer, on the real servers.
mod e2e_tracker;
// The Windows build under Wine against the real Kafka.
mod e2e_windows_wine;
// The report as a person sees it, in headless Chromium.
mod report_browser;
// Simulated scenarios read back from the files the simulator wrote.
mod simulated_truth;

//! Every SQL statement the service sends also runs on a current ClickHouse
//! (chdb-core, in process) and answers there as on the 18.16 test server:
//! see `sql_current.py`, which this test runs with the built binary.

use std::process::Command;

#[test]
fn every_sql_shape_runs_on_current_clickhouse_as_on_the_test_server() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sql_current.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_ecstatic-query"))
        .output()
        .expect("running python3 (install it: apt-get install python3)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "sql_current.py failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("statements ran"), "{stdout}");
}

//! `ecstatic-loadgen` against real listeners on 127.0.0.1: what arrives is
//! what the summary says was sent, framed as asked.

use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread::JoinHandle;
use std::time::Duration;

const LOADGEN: &str = env!("CARGO_BIN_EXE_ecstatic-loadgen");

fn loadgen(args: &[&str]) -> Output {
    let output = Command::new(LOADGEN)
        .args(args)
        .env_remove("ECSTATIC_COUNT")
        .output()
        .expect("ecstatic-loadgen runs");
    assert!(
        output.status.success(),
        "ecstatic-loadgen {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The JSON summary line (from stdout, or stderr when stdout is the stream).
fn summary(text: &[u8]) -> serde_json::Value {
    let text = std::str::from_utf8(text).unwrap();
    let line = text
        .lines()
        .find(|line| line.starts_with('{'))
        .expect("a JSON summary line");
    serde_json::from_str(line).unwrap()
}

/// Accepts `connections` TCP connections and reads each to its end.
fn tcp_sink(connections: usize) -> (String, JoinHandle<Vec<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let handle = std::thread::spawn(move || {
        let readers: Vec<_> = (0..connections)
            .map(|_| {
                let (mut stream, _) = listener.accept().unwrap();
                std::thread::spawn(move || {
                    let mut bytes = Vec::new();
                    stream.read_to_end(&mut bytes).unwrap();
                    bytes
                })
            })
            .collect();
        readers
            .into_iter()
            .map(|reader| reader.join().unwrap())
            .collect()
    });
    (address, handle)
}

fn lf_frames(stream: &[u8]) -> Vec<&[u8]> {
    assert!(
        stream.is_empty() || stream.ends_with(b"\n"),
        "stream ends with a whole line"
    );
    stream
        .split(|&b| b == b'\n')
        .filter(|frame| !frame.is_empty())
        .collect()
}

fn octet_frames(mut stream: &[u8]) -> Vec<&[u8]> {
    let mut frames = Vec::new();
    while !stream.is_empty() {
        let space = stream.iter().position(|&b| b == b' ').unwrap();
        let len: usize = std::str::from_utf8(&stream[..space])
            .unwrap()
            .parse()
            .unwrap();
        frames.push(&stream[space + 1..space + 1 + len]);
        stream = &stream[space + 1 + len..];
    }
    frames
}

fn is_bunny_message(message: &[u8]) -> bool {
    message.starts_with(b"<134>1 ")
        && std::str::from_utf8(message).is_ok_and(|text| text.contains(" bunnycdn - - - \u{feff}"))
}

fn shared_sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/bunny")
        .join(name)
}

fn access_log(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/access-logs")
        .join(name);
    path.to_str().unwrap().to_owned()
}

#[test]
fn generated_stream_over_three_tcp_connections() {
    let (target, sink) = tcp_sink(3);
    let output = loadgen(&[
        "--generate",
        "--count",
        "1000",
        "--connections",
        "3",
        "--target",
        &target,
    ]);
    let streams = sink.join().unwrap();

    let summary = summary(&output.stdout);
    let mut frames = 0;
    for stream in &streams {
        let lines = lf_frames(stream);
        assert!(lines.iter().all(|line| is_bunny_message(line)));
        assert!((333..=334).contains(&lines.len()), "{} frames", lines.len());
        frames += lines.len();
    }
    assert_eq!(frames, 1000);
    assert_eq!(summary["messages"], 1000);
    assert_eq!(summary["errors"], 0);
    let received: usize = streams.iter().map(Vec::len).sum();
    assert_eq!(summary["bytes"], received);
}

#[test]
fn octet_counted_json_over_tcp() {
    let (target, sink) = tcp_sink(1);
    let output = loadgen(&[
        "--generate",
        "--count",
        "300",
        "--framing",
        "octet",
        "--format",
        "json",
        "--target",
        &target,
    ]);
    let streams = sink.join().unwrap();

    let frames = octet_frames(&streams[0]);
    assert_eq!(frames.len(), 300);
    for frame in frames {
        assert!(is_bunny_message(frame));
        let text = std::str::from_utf8(frame).unwrap();
        let body = text.split_once('\u{feff}').unwrap().1;
        let value: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(value["PullZoneId"].as_u64().unwrap() >= 1000);
    }
    assert_eq!(summary(&output.stdout)["messages"], 300);
}

#[test]
fn one_datagram_per_message_over_udp() {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    // A safety net against a hang if datagrams go missing, not a pacing sleep.
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let target = socket.local_addr().unwrap().to_string();
    let receiver = std::thread::spawn(move || {
        let mut datagrams = Vec::new();
        let mut buf = vec![0u8; 65_536];
        while datagrams.len() < 200 {
            let len = socket.recv(&mut buf).expect("all 200 datagrams arrive");
            datagrams.push(buf[..len].to_vec());
        }
        datagrams
    });
    // Rate-limited so that loopback never overruns the receive buffer.
    let output = loadgen(&[
        "--generate",
        "--udp",
        "--count",
        "200",
        "--rate",
        "4000",
        "--connections",
        "2",
        "--target",
        &target,
    ]);

    let datagrams = receiver.join().unwrap();
    assert!(datagrams.iter().all(|datagram| is_bunny_message(datagram)));
    assert!(datagrams.iter().all(|datagram| !datagram.ends_with(b"\n")));
    assert_eq!(summary(&output.stdout)["messages"], 200);
}

#[test]
fn file_is_sent_as_it_is() {
    let path = shared_sample("octet-counted.syslog");
    let (target, sink) = tcp_sink(1);
    let output = loadgen(&["--file", path.to_str().unwrap(), "--target", &target]);

    assert_eq!(sink.join().unwrap()[0], std::fs::read(&path).unwrap());
    assert_eq!(summary(&output.stdout)["messages"], 6);
}

#[test]
fn file_lines_can_be_reframed() {
    let path = shared_sample("forward-pipe.syslog");
    let (target, sink) = tcp_sink(1);
    loadgen(&[
        "--file",
        path.to_str().unwrap(),
        "--framing",
        "octet",
        "--target",
        &target,
    ]);

    let original = std::fs::read(&path).unwrap();
    let received = sink.join().unwrap();
    assert_eq!(octet_frames(&received[0]), lf_frames(&original));
}

#[test]
fn file_cycles_until_count() {
    let path = shared_sample("logging-api-v1.log");
    let (target, sink) = tcp_sink(1);
    loadgen(&[
        "--file",
        path.to_str().unwrap(),
        "--count",
        "20",
        "--target",
        &target,
    ]);

    let original = std::fs::read(&path).unwrap();
    let received = sink.join().unwrap();
    let frames = lf_frames(&received[0]);
    assert_eq!(frames.len(), 20);
    assert_eq!(frames[..6], lf_frames(&original)[..]);
    assert_eq!(frames[6], frames[0]);
}

#[test]
fn apache_log_is_rewritten_and_the_bad_line_counted() {
    let output = loadgen(&[
        "--apache",
        &access_log("apache_access_2.log.gz"),
        "--output",
        "-",
    ]);

    let lines = lf_frames(&output.stdout);
    assert_eq!(lines.len(), 9999);
    assert!(lines.iter().all(|line| is_bunny_message(line)));
    let summary = summary(&output.stderr);
    assert_eq!(summary["messages"], 9999);
    assert_eq!(summary["rejected"], 1);
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("`user-agent` field has no closing quote"),
        "{stderr}"
    );
}

#[test]
fn output_to_stdout_is_deterministic_from_the_seed() {
    let args = [
        "--generate",
        "--count",
        "500",
        "--output",
        "-",
        "--seed",
        "42",
        "--start",
        "2024-12-04T13:00:00Z",
    ];
    let first = loadgen(&args);
    let second = loadgen(&args);
    assert_eq!(first.stdout, second.stdout);
    assert_eq!(lf_frames(&first.stdout).len(), 500);
    let text = String::from_utf8(first.stdout).unwrap();
    assert!(text.starts_with("<134>1 2024-12-04T1"), "{}", &text[..40]);
}

#[test]
fn rate_limited_run_sends_everything() {
    let (target, sink) = tcp_sink(1);
    let output = loadgen(&[
        "--generate",
        "--count",
        "50",
        "--rate",
        "500",
        "--target",
        &target,
    ]);
    assert_eq!(lf_frames(&sink.join().unwrap()[0]).len(), 50);
    assert_eq!(summary(&output.stdout)["messages"], 50);
}

#[test]
fn flags_come_from_the_environment_too() {
    let output = Command::new(LOADGEN)
        .args(["--generate", "--output", "-"])
        .env("ECSTATIC_COUNT", "7")
        .env("ECSTATIC_FORMAT", "json")
        .output()
        .unwrap();
    assert!(output.status.success());
    let lines = lf_frames(&output.stdout);
    assert_eq!(lines.len(), 7);
    assert!(lines.iter().all(|line| line.ends_with(b"}")));
}

#[test]
fn refused_connection_is_a_clear_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = format!("127.0.0.1:{port}");
    let output = Command::new(LOADGEN)
        .args(["--generate", "--count", "1", "--target", &target])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains(&format!("cannot connect to `{target}`")),
        "{stderr}"
    );
}

#[test]
fn a_source_is_required() {
    let output = Command::new(LOADGEN)
        .args(["--count", "1"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8(output.stderr)
            .unwrap()
            .contains("--generate")
    );
}

//! The decoder on a real loopback connection, with case 02's writes each
//! arriving as separate reads (read loop as in `tokio_util`'s `FramedRead`:
//! `read_buf` into a `BytesMut`, decode, `decode_eof` at end of stream).

mod common;

use bytes::BytesMut;
use common::read_testdata;
use ecstatic_ingest::{BodyFormat, DEFAULT_MAX_FRAME_BYTES, Frame, SyslogDecoder, parse_message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::codec::Decoder;

#[tokio::test]
async fn case_02_split_writes_over_tcp() {
    let input = read_testdata("cases/02-octet-frames-split-reads/input");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen_tx, mut seen_rx) = watch::channel(0usize);

    let cuts = [0, 2, 4, 141, 383, 437, 843, input.len()];
    let writes: Vec<Vec<u8>> = cuts
        .windows(2)
        .map(|w| input[w[0]..w[1]].to_vec())
        .collect();
    let client = tokio::spawn(async move {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let mut sent = 0;
        for write in writes {
            stream.write_all(&write).await.unwrap();
            sent += write.len();
            // The next write goes out only once this one has been read.
            seen_rx.wait_for(|&read| read >= sent).await.unwrap();
        }
        stream.shutdown().await.unwrap();
    });

    let (mut server, _) = listener.accept().await.unwrap();
    let mut decoder = SyslogDecoder::new(DEFAULT_MAX_FRAME_BYTES);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut total = 0;
    let mut reads = 0;
    loop {
        let n = server.read_buf(&mut buf).await.unwrap();
        total += n;
        reads += 1;
        // Tell the writer how far we got, so its next write is a new read.
        seen_tx.send_replace(total);
        if n == 0 {
            while let Some(frame) = decoder.decode_eof(&mut buf).unwrap() {
                frames.push(frame);
            }
            break;
        }
        while let Some(frame) = decoder.decode(&mut buf).unwrap() {
            frames.push(frame);
        }
    }
    client.await.unwrap();
    assert!(
        reads > 7,
        "each of the 7 writes is read on its own, then end of stream"
    );

    let mut ids = Vec::new();
    for frame in frames {
        let Frame::Message(bytes) = frame else {
            panic!("oversize frame")
        };
        let record = parse_message(&bytes, BodyFormat::Auto).unwrap();
        ids.push((record.request_id.into_owned(), record.country.into_owned()));
    }

    let want: Vec<(String, String)> = [(1, "DE"), (2, "US"), (3, "PL")]
        .iter()
        .map(|&(n, c)| (format!("02{n:030}"), c.to_owned()))
        .collect();
    assert_eq!(ids, want);
}

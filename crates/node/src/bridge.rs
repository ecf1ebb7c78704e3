//! WebSocket sessions the runtime cannot take as they are, ended here and
//! carried on to the runtime's streaming server over SPDY (what upstream's
//! API server does with its stream translator and tunnel):
//!
//! - exec and attach over `v5.channel.k8s.io` (kubectl 1.30+). v5 differs
//!   from the v4 that containerd speaks by one signal, "close stdin"
//!   (channel 255), which only SPDY can pass on (a FIN on the stdin stream);
//! - port-forward over `SPDY/3.1+portforward.k8s.io` (kubectl 1.31+): SPDY
//!   frames inside WebSocket binary messages, unwrapped onto a SPDY
//!   connection to the runtime.
//!
//! The SPDY side is the small subset of SPDY/3.1 a client of the kubelet's
//! streaming protocol needs: SYN_STREAM with a `streamtype` header, DATA
//! frames with FIN, PING answered. Header blocks are zlib "stored" blocks,
//! which any SPDY peer inflates (no preset dictionary is referenced).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt, WriteHalf};
use tokio::sync::Mutex;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::serve::{Body, text};

pub const V5: &str = "v5.channel.k8s.io";
pub const PORT_FORWARD_TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";

/// What the session carries.
pub enum Session {
    Exec { stdin: bool, stdout: bool, stderr: bool, tty: bool },
    PortForward,
}

/// Whether this request is a WebSocket upgrade offering `protocol`.
pub fn offers(req: &Request<Incoming>, protocol: &str) -> bool {
    let websocket = req.headers().get("upgrade").and_then(|v| v.to_str().ok()).is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    let offered = req.headers().get_all("sec-websocket-protocol").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|p| p.trim() == protocol);
    websocket && offered
}

/// Answers the client's WebSocket upgrade once the runtime accepted SPDY,
/// then runs the session between the two.
pub async fn serve(mut req: Request<Incoming>, url: &str, session: Session) -> Response<Body> {
    let Some(key) = req.headers().get("sec-websocket-key").map(|k| k.as_bytes().to_vec()) else {
        return text(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key");
    };
    let (runtime_protocol, client_protocol) = match session {
        Session::Exec { .. } => ("v4.channel.k8s.io", V5),
        Session::PortForward => ("portforward.k8s.io", PORT_FORWARD_TUNNEL),
    };
    let runtime = match spdy_upgrade(url, runtime_protocol).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let client = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(client) = client.await else { return };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(client), Role::Server, None).await;
        match session {
            Session::Exec { stdin, stdout, stderr, tty } => exec(ws, runtime, stdin, stdout, stderr, tty).await,
            Session::PortForward => tunnel(ws, runtime).await,
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", tokio_tungstenite::tungstenite::handshake::derive_accept_key(&key))
        .header("sec-websocket-protocol", client_protocol)
        .body(Full::new(Bytes::new()).boxed())
        .unwrap()
}

/// Upgrades a connection to the runtime's streaming URL to SPDY/3.1.
async fn spdy_upgrade(url: &str, protocol: &str) -> Result<Upgraded, Response<Body>> {
    let headers = [("connection", "Upgrade"), ("upgrade", "SPDY/3.1"), ("x-stream-protocol-version", protocol)]
        .iter()
        .filter_map(|(k, v)| Some((http::HeaderName::from_static(k), http::HeaderValue::from_str(v).ok()?)))
        .collect();
    let mut resp = crate::serve::dial_runtime(url, http::Method::GET, headers).await?;
    hyper::upgrade::on(&mut resp).await.map_err(|e| text(StatusCode::BAD_GATEWAY, format!("upgrading to the runtime: {e}")))
}

type Ws = WebSocketStream<TokioIo<Upgraded>>;
type Writer = Arc<Mutex<WriteHalf<TokioIo<Upgraded>>>>;

const FIN: u8 = 0x01;
const SYN_STREAM: u16 = 1;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;

/// A SPDY/3 control frame.
fn control(kind: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x80, 0x03];
    f.extend_from_slice(&kind.to_be_bytes());
    f.push(flags);
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    f.extend_from_slice(payload);
    f
}

/// A SPDY data frame.
fn data(stream: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = (stream & 0x7fff_ffff).to_be_bytes().to_vec();
    f.push(flags);
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    f.extend_from_slice(payload);
    f
}

/// SYN_STREAM with one header; `first` starts the connection's zlib stream.
fn syn_stream(stream: u32, name: &str, value: &str, first: bool) -> Vec<u8> {
    let mut block = 1u32.to_be_bytes().to_vec();
    for s in [name, value] {
        block.extend_from_slice(&(s.len() as u32).to_be_bytes());
        block.extend_from_slice(s.as_bytes());
    }
    let mut z = if first { vec![0x78, 0x01] } else { Vec::new() };
    // One stored deflate block, then the empty block of a sync flush.
    z.push(0x00);
    z.extend_from_slice(&(block.len() as u16).to_le_bytes());
    z.extend_from_slice(&(!(block.len() as u16)).to_le_bytes());
    z.extend_from_slice(&block);
    z.extend_from_slice(&[0x00, 0x00, 0x00, 0xff, 0xff]);
    let mut payload = stream.to_be_bytes().to_vec();
    payload.extend_from_slice(&0u32.to_be_bytes());
    payload.extend_from_slice(&[0, 0]);
    payload.extend_from_slice(&z);
    control(SYN_STREAM, 0, &payload)
}

/// One frame read from the runtime.
enum Frame {
    Data { stream: u32, payload: Vec<u8> },
    Control { kind: u16, payload: Vec<u8> },
}

async fn read_frame(r: &mut (impl AsyncReadExt + Unpin)) -> Option<Frame> {
    let mut h = [0u8; 8];
    r.read_exact(&mut h).await.ok()?;
    let len = u32::from_be_bytes([0, h[5], h[6], h[7]]) as usize;
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await.ok()?;
    if h[0] & 0x80 != 0 {
        Some(Frame::Control { kind: u16::from_be_bytes([h[2], h[3]]), payload })
    } else {
        Some(Frame::Data { stream: u32::from_be_bytes([h[0], h[1], h[2], h[3]]) & 0x7fff_ffff, payload })
    }
}

async fn write(w: &Writer, frame: &[u8]) -> bool {
    w.lock().await.write_all(frame).await.is_ok()
}

/// exec/attach: v5 channels (0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize,
/// 255 close) onto the streams of the kubelet's v4 SPDY protocol.
async fn exec(ws: Ws, runtime: Upgraded, stdin: bool, stdout: bool, stderr: bool, tty: bool) {
    let (mut rd, wr) = tokio::io::split(TokioIo::new(runtime));
    let wr: Writer = Arc::new(Mutex::new(wr));
    let wanted = [("error", 3u8, true), ("stdin", 0, stdin), ("stdout", 1, stdout), ("stderr", 2, stderr && !tty), ("resize", 4, tty)];
    let mut stream_of: HashMap<u8, u32> = HashMap::new();
    let mut channel_of: HashMap<u32, u8> = HashMap::new();
    let mut id = 1u32;
    for (kind, channel, on) in wanted {
        if !on {
            continue;
        }
        if !write(&wr, &syn_stream(id, "streamtype", kind, id == 1)).await {
            return;
        }
        stream_of.insert(channel, id);
        channel_of.insert(id, channel);
        id += 2;
    }
    let (mut tx, mut rx) = ws.split();
    let to_runtime = async {
        while let Some(Ok(msg)) = rx.next().await {
            let Message::Binary(b) = msg else {
                if matches!(msg, Message::Close(_)) {
                    break;
                }
                continue;
            };
            let frame = match (b.first(), b.get(1)) {
                (Some(255), Some(ch)) => stream_of.get(ch).map(|s| data(*s, FIN, &[])),
                (Some(ch @ (0 | 4)), _) => stream_of.get(ch).map(|s| data(*s, 0, &b[1..])),
                _ => None,
            };
            if let Some(f) = frame
                && !write(&wr, &f).await
            {
                break;
            }
        }
    };
    let from_runtime = async {
        while let Some(f) = read_frame(&mut rd).await {
            match f {
                Frame::Data { stream, payload, .. } => {
                    if let Some(ch) = channel_of.get(&stream).filter(|_| !payload.is_empty()) {
                        let mut m = Vec::with_capacity(payload.len() + 1);
                        m.push(*ch);
                        m.extend_from_slice(&payload);
                        if tx.send(Message::Binary(m.into())).await.is_err() {
                            return;
                        }
                    }
                }
                Frame::Control { kind: PING, payload } => {
                    write(&wr, &control(PING, 0, &payload)).await;
                }
                Frame::Control { kind: GOAWAY, .. } => break,
                Frame::Control { kind: RST_STREAM, .. } | Frame::Control { .. } => {}
            }
        }
        let _ = tx.send(normal_close()).await;
        let _ = tx.close().await;
    };
    tokio::select! {
        _ = to_runtime => {}
        _ = from_runtime => {}
    }
}

/// A close with status 1000: clients read it as the end of every stream.
fn normal_close() -> Message {
    use tokio_tungstenite::tungstenite::protocol::{CloseFrame, frame::coding::CloseCode};
    Message::Close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() }))
}

/// port-forward: the client's SPDY frames arrive inside WebSocket binary
/// messages and go to the runtime as they are; the runtime's bytes go back
/// the same way.
async fn tunnel(ws: Ws, runtime: Upgraded) {
    let (mut rd, mut wr) = tokio::io::split(TokioIo::new(runtime));
    let (mut tx, mut rx) = ws.split();
    let up = async {
        while let Some(Ok(msg)) = rx.next().await {
            match msg {
                Message::Binary(b) => {
                    if wr.write_all(&b).await.is_err() {
                        break;
                    }
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = wr.shutdown().await;
    };
    let down = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(Message::Binary(buf[..n].to_vec().into())).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = tx.send(normal_close()).await;
    };
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip() {
        let syn = syn_stream(3, "streamtype", "stdin", true);
        assert_eq!(&syn[..4], &[0x80, 0x03, 0x00, 0x01]);
        let mut r: &[u8] = &syn;
        let Some(Frame::Control { kind, payload }) = read_frame(&mut r).await else { panic!("not a control frame") };
        assert_eq!(kind, SYN_STREAM);
        assert_eq!(u32::from_be_bytes(payload[..4].try_into().unwrap()), 3);
        // zlib header without a preset dictionary, then a stored block with the headers.
        assert_eq!(&payload[10..13], &[0x78, 0x01, 0x00]);
        let len = u16::from_le_bytes([payload[13], payload[14]]) as usize;
        let block = &payload[17..17 + len];
        assert_eq!(&block[..4], &1u32.to_be_bytes());
        assert!(block.ends_with(b"stdin"));
        let d = data(5, FIN, b"hi");
        assert_eq!(d[4], FIN);
        let mut r: &[u8] = &d;
        let Some(Frame::Data { stream, payload }) = read_frame(&mut r).await else { panic!("not a data frame") };
        assert_eq!((stream, payload.as_slice()), (5, &b"hi"[..]));
    }
}

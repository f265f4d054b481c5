//! Kubelets before Kubernetes 1.26 (gRPC-Go) send a unix socket's path as
//! the HTTP/2 `:authority`. h2, under tonic, refuses that as malformed
//! (RST_STREAM, PROTOCOL_ERROR), so the kubelet could neither register nor
//! call the plugin. Every connection therefore passes through [`relay`]:
//! frames from the kubelet are forwarded unchanged except header blocks,
//! which are decoded (mirroring the kubelet's HPACK state), given
//! `:authority: localhost`, and re-encoded as literals without indexing,
//! so the server side needs no shared compression state. Frames from the
//! server go back untouched.

use fluke_hpack::Decoder;
use fluke_hpack::encoder::encode_integer_into;
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The smallest SETTINGS_MAX_FRAME_SIZE a peer may set: always safe.
const MAX_FRAME: usize = 16_384;
/// Header blocks larger than this are refused (a kubelet's are < 1 KiB).
const MAX_BLOCK: usize = 256 * 1024;

/// Copies `client` to `server` rewriting header blocks, and `server` back.
pub async fn relay<C, S>(client: C, server: S) -> io::Result<()>
where
    C: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut server_read, mut server_write) = tokio::io::split(server);
    let upstream = async {
        let result = rewrite(&mut client_read, &mut server_write).await;
        let _ = server_write.shutdown().await;
        result
    };
    let downstream = async {
        let result = tokio::io::copy(&mut server_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
        result.map(drop)
    };
    let (up, down) = tokio::join!(upstream, downstream);
    up.and(down)
}

/// The client-to-server direction.
async fn rewrite<R, W>(from: &mut R, to: &mut W) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut preface = [0u8; 24];
    from.read_exact(&mut preface).await?;
    if &preface != PREFACE {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "not HTTP/2"));
    }
    to.write_all(&preface).await?;
    let mut decoder = Decoder::new();
    // A header block split over HEADERS and CONTINUATION frames.
    let mut pending: Option<Pending> = None;
    loop {
        let mut head = [0u8; 9];
        match from.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let length = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let (kind, flags) = (head[3], head[4]);
        let stream = [head[5], head[6], head[7], head[8]];
        let mut payload = vec![0u8; length];
        from.read_exact(&mut payload).await?;
        match (kind, pending.as_mut()) {
            (HEADERS, None) => {
                let started = Pending::start(flags, stream, &payload)?;
                if flags & END_HEADERS != 0 {
                    to.write_all(&started.finish(&mut decoder)?).await?;
                } else {
                    pending = Some(started);
                }
            }
            (CONTINUATION, Some(open)) if open.stream == stream => {
                open.block.extend_from_slice(&payload);
                if open.block.len() > MAX_BLOCK {
                    return Err(invalid("header block too large"));
                }
                if flags & END_HEADERS != 0 {
                    let done = pending.take().expect("open");
                    to.write_all(&done.finish(&mut decoder)?).await?;
                }
            }
            (_, Some(_)) => return Err(invalid("a frame interrupted a header block")),
            _ => {
                to.write_all(&head).await?;
                to.write_all(&payload).await?;
            }
        }
    }
}

/// A header block being collected.
struct Pending {
    stream: [u8; 4],
    end_stream: bool,
    priority: Option<[u8; 5]>,
    block: Vec<u8>,
}

impl Pending {
    /// From a HEADERS frame's payload: padding and priority stripped.
    fn start(flags: u8, stream: [u8; 4], payload: &[u8]) -> io::Result<Self> {
        let mut body = payload;
        let mut padding = 0;
        if flags & PADDED != 0 {
            let (&pad, rest) = body.split_first().ok_or_else(|| invalid("short HEADERS"))?;
            padding = usize::from(pad);
            body = rest;
        }
        let priority = if flags & PRIORITY != 0 {
            let (fields, rest) = body
                .split_at_checked(5)
                .ok_or_else(|| invalid("short HEADERS"))?;
            body = rest;
            Some(fields.try_into().expect("five bytes"))
        } else {
            None
        };
        let block = body
            .get(
                ..body
                    .len()
                    .checked_sub(padding)
                    .ok_or_else(|| invalid("bad padding"))?,
            )
            .ok_or_else(|| invalid("bad padding"))?
            .to_vec();
        Ok(Pending {
            stream,
            end_stream: flags & END_STREAM != 0,
            priority,
            block,
        })
    }

    /// The block with `:authority` set to `localhost`, as frames.
    fn finish(self, decoder: &mut Decoder) -> io::Result<Vec<u8>> {
        let headers = decoder
            .decode(&self.block)
            .map_err(|e| invalid(&format!("HPACK: {e:?}")))?;
        let mut block = Vec::with_capacity(self.block.len() + 32);
        for (name, value) in &headers {
            let value: &[u8] = if name == b":authority" {
                b"localhost"
            } else {
                value
            };
            literal(&mut block, name, value)?;
        }
        let mut out = Vec::with_capacity(block.len() + 32);
        let first_room = MAX_FRAME - if self.priority.is_some() { 5 } else { 0 };
        let (first, mut rest) = block.split_at(block.len().min(first_room));
        let mut flags = if self.end_stream { END_STREAM } else { 0 };
        if rest.is_empty() {
            flags |= END_HEADERS;
        }
        let mut payload = Vec::with_capacity(first.len() + 5);
        if let Some(priority) = self.priority {
            flags |= PRIORITY;
            payload.extend_from_slice(&priority);
        }
        payload.extend_from_slice(first);
        frame(&mut out, HEADERS, flags, self.stream, &payload);
        while !rest.is_empty() {
            let (chunk, after) = rest.split_at(rest.len().min(MAX_FRAME));
            let flags = if after.is_empty() { END_HEADERS } else { 0 };
            frame(&mut out, CONTINUATION, flags, self.stream, chunk);
            rest = after;
        }
        Ok(out)
    }
}

/// A literal header field without indexing, new name, no Huffman coding.
fn literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) -> io::Result<()> {
    out.push(0x00);
    for text in [name, value] {
        encode_integer_into(text.len(), 7, 0, out)?;
        out.extend_from_slice(text);
    }
    Ok(())
}

fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: [u8; 4], payload: &[u8]) {
    let length = payload.len();
    out.extend_from_slice(&[
        (length >> 16) as u8,
        (length >> 8) as u8,
        length as u8,
        kind,
        flags,
    ]);
    out.extend_from_slice(&stream);
    out.extend_from_slice(payload);
}

fn invalid(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fluke_hpack::Encoder;

    /// A client's HEADERS frame (padded, with priority, the block split
    /// over a CONTINUATION) comes out as one block whose authority is
    /// `localhost` and whose other headers are unchanged; other frames
    /// pass as they were.
    #[tokio::test]
    async fn authority_is_replaced_and_everything_else_kept() {
        let mut encoder = Encoder::new();
        let headers: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":path", b"/pluginregistration.Registration/GetInfo"),
            (
                b":authority",
                b"/var/lib/kubelet/plugins_registry/x-reg.sock",
            ),
            (b"content-type", b"application/grpc"),
        ];
        let block = encoder.encode(headers.iter().copied());
        let (a, b) = block.split_at(10);
        let mut input = PREFACE.to_vec();
        let settings = [0, 0, 0, 4, 0, 0, 0, 0, 0];
        input.extend_from_slice(&settings);
        let mut first = vec![2u8]; // pad length
        first.extend_from_slice(&[0, 0, 0, 0, 16]); // priority
        first.extend_from_slice(a);
        first.extend_from_slice(&[0, 0]);
        frame(&mut input, HEADERS, PADDED | PRIORITY, [0, 0, 0, 1], &first);
        frame(&mut input, CONTINUATION, END_HEADERS, [0, 0, 0, 1], b);
        let data = [0, 0, 1, 0, 1, 0, 0, 0, 1, 42];
        input.extend_from_slice(&data);

        let mut output = Vec::new();
        rewrite(&mut input.as_slice(), &mut output).await.unwrap();
        assert_eq!(&output[..24], PREFACE);
        assert_eq!(&output[24..33], &settings);
        let rest = &output[33..];
        let length = usize::from(rest[2]) | usize::from(rest[1]) << 8;
        assert_eq!(rest[3], HEADERS);
        assert_eq!(rest[4], END_HEADERS | PRIORITY);
        assert_eq!(&rest[9..14], &[0, 0, 0, 0, 16]);
        let decoded = Decoder::new().decode(&rest[14..9 + length]).unwrap();
        let as_text: Vec<(String, String)> = decoded
            .iter()
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(n).into(),
                    String::from_utf8_lossy(v).into(),
                )
            })
            .collect();
        assert_eq!(as_text[3], (":authority".into(), "localhost".into()));
        assert_eq!(as_text[2].1, "/pluginregistration.Registration/GetInfo");
        assert_eq!(as_text.len(), 5);
        assert_eq!(
            &rest[9 + length..],
            &data,
            "the DATA frame passes unchanged"
        );
    }

    #[tokio::test]
    async fn not_http2_or_an_interrupted_block_is_refused() {
        let mut output = Vec::new();
        assert!(
            rewrite(&mut &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..], &mut output)
                .await
                .is_err()
        );
        let mut input = PREFACE.to_vec();
        frame(&mut input, HEADERS, 0, [0, 0, 0, 1], &[0x82]);
        frame(&mut input, 0x6, 0, [0, 0, 0, 0], &[0; 8]);
        assert!(
            rewrite(&mut input.as_slice(), &mut Vec::new())
                .await
                .is_err()
        );
    }
}

//! Calling an RPC with bytes rather than a message, for what no generated client can send: a body
//! that is not a protobuf message of the call's type, or not even valid UTF-8 where it wants text.

use std::net::SocketAddr;

use bytes::{Buf, BufMut};
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use uuid::Uuid;

use crate::in_workspace;

/// A codec whose messages are their encoded bytes, sent and received untouched.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let mut message = vec![0; src.remaining()];
        src.copy_to_slice(&mut message);
        Ok(Some(message))
    }
}

async fn grpc(addr: SocketAddr) -> tonic::client::Grpc<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("an endpoint")
        .connect()
        .await
        .expect("connect");
    tonic::client::Grpc::new(channel)
}

fn path(method: &str) -> http::uri::PathAndQuery {
    method
        .parse()
        .expect("a method path such as /pkg.Service/Method")
}

/// Calls the unary or server-streaming RPC at `method` (`/package.Service/Method`) in
/// `workspace` with `body` as the request message, and returns the answer's status: the first
/// stream message's, for a stream.
pub async fn call_raw(
    addr: SocketAddr,
    method: &str,
    server_streaming: bool,
    body: Vec<u8>,
    workspace: Uuid,
) -> Result<(), Status> {
    let mut grpc = grpc(addr).await;
    grpc.ready().await.expect("ready");
    let request = in_workspace(workspace, body);
    if server_streaming {
        let mut stream = grpc
            .server_streaming(request, path(method), RawCodec)
            .await?
            .into_inner();
        stream.message().await.map(drop)
    } else {
        grpc.unary(request, path(method), RawCodec).await.map(drop)
    }
}

/// Calls the client-streaming RPC at `method` in `workspace` with `bodies` as the stream's
/// messages.
pub async fn call_raw_client_stream(
    addr: SocketAddr,
    method: &str,
    bodies: Vec<Vec<u8>>,
    workspace: Uuid,
) -> Result<Vec<u8>, Status> {
    let mut grpc = grpc(addr).await;
    grpc.ready().await.expect("ready");
    let request = in_workspace(workspace, tokio_stream::iter(bodies));
    grpc.client_streaming(request, path(method), RawCodec)
        .await
        .map(tonic::Response::into_inner)
}

//! Unary gRPC over tonic without generated code: each server matches the
//! request path itself ([`Dispatch`]) and answers through [`unary`], which
//! decodes the request, runs the handler and encodes the reply or the
//! status. Who may connect at all is decided at accept (`serve`).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::{Grpc, UnaryService};
use tonic_prost::ProstCodec;

pub type Request = http::Request<Body>;
pub type Reply = http::Response<Body>;

/// A gRPC server's routing: one future per request path.
pub trait Dispatch: Send + Sync + 'static {
    fn dispatch(self: Arc<Self>, path: &str, request: Request) -> BoxFuture<Reply, Infallible>;
}

/// The tower service tonic's transport serves, over a [`Dispatch`].
pub struct Server<T>(pub Arc<T>);

impl<T> Clone for Server<T> {
    fn clone(&self) -> Self {
        Server(Arc::clone(&self.0))
    }
}

impl<T: Dispatch> Service<Request> for Server<T> {
    type Response = Reply;
    type Error = Infallible;
    type Future = BoxFuture<Reply, Infallible>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let path = request.uri().path().to_owned();
        Arc::clone(&self.0).dispatch(&path, request)
    }
}

/// The answer for a path no server knows.
pub fn unimplemented(path: &str) -> BoxFuture<Reply, Infallible> {
    let status = Status::unimplemented(format!("{path} is not served by Keyward's CSI plugin"));
    Box::pin(async move { Ok(status.into_http()) })
}

/// Answers one unary call with `handler`.
pub fn unary<Req, Resp, F, Fut>(request: Request, handler: F) -> BoxFuture<Reply, Infallible>
where
    Req: prost::Message + Default + Send + 'static,
    Resp: prost::Message + Send + 'static,
    F: FnOnce(Req) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Resp, Status>> + Send + 'static,
{
    Box::pin(async move {
        let mut grpc = Grpc::new(ProstCodec::<Resp, Req>::default());
        Ok(grpc.unary(Once(Some(handler)), request).await)
    })
}

/// A handler run once, as tonic's `UnaryService`.
struct Once<F>(Option<F>);

impl<Req, Resp, F, Fut> UnaryService<Req> for Once<F>
where
    Req: Send + 'static,
    F: FnOnce(Req) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Resp, Status>> + Send + 'static,
{
    type Response = Resp;
    type Future = BoxFuture<tonic::Response<Resp>, Status>;

    fn call(&mut self, request: tonic::Request<Req>) -> Self::Future {
        let handler = self.0.take();
        Box::pin(async move {
            let handler = handler.ok_or_else(|| Status::internal("handler called twice"))?;
            handler(request.into_inner())
                .await
                .map(tonic::Response::new)
        })
    }
}

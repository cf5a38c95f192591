//! The transport floor: `pdp.v1.AuthorizationService` answering a constant allow without
//! looking at the request, on the same tonic stack as `pdp serve`. Load tests measure the PDP
//! against it in the same run.

use std::process::ExitCode;

use pdp_proto::v1 as pb;
use tonic::{Request, Response, Status};

/// The allocator `pdp` uses, so the floor differs from the PDP only by the PDP's own work.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug)]
struct Empty(pb::CheckResponse);

#[tonic::async_trait]
impl pb::authorization_service_server::AuthorizationService for Empty {
    async fn check(
        &self,
        _request: Request<pb::CheckRequest>,
    ) -> Result<Response<pb::CheckResponse>, Status> {
        Ok(Response::new(self.0.clone()))
    }

    async fn check_batch(
        &self,
        _request: Request<pb::CheckBatchRequest>,
    ) -> Result<Response<pb::CheckBatchResponse>, Status> {
        Ok(Response::new(pb::CheckBatchResponse::default()))
    }

    async fn plan_resources(
        &self,
        _request: Request<pb::PlanResourcesRequest>,
    ) -> Result<Response<pb::PlanResourcesResponse>, Status> {
        Ok(Response::new(pb::PlanResourcesResponse::default()))
    }

    async fn search_resources(
        &self,
        _request: Request<pb::SearchResourcesRequest>,
    ) -> Result<Response<pb::SearchResourcesResponse>, Status> {
        Err(Status::unimplemented("an empty server searches nothing"))
    }

    async fn search_subjects(
        &self,
        _request: Request<pb::SearchSubjectsRequest>,
    ) -> Result<Response<pb::SearchSubjectsResponse>, Status> {
        Err(Status::unimplemented("an empty server searches nothing"))
    }

    async fn search_actions(
        &self,
        _request: Request<pb::SearchActionsRequest>,
    ) -> Result<Response<pb::SearchActionsResponse>, Status> {
        Err(Status::unimplemented("an empty server searches nothing"))
    }
}

fn main() -> ExitCode {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:50052".into());
    let Ok(addr) = addr.parse::<std::net::SocketAddr>() else {
        eprintln!("usage: empty-server [ADDR]");
        return ExitCode::from(2);
    };
    let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    else {
        return ExitCode::from(1);
    };
    let response = pb::CheckResponse {
        decision: pb::Decision::Allow as i32,
        reason: pb::Reason::Allowed as i32,
        decision_id: "00000000-0000-0000-0000-000000000000".into(),
        policy_revision: "0000000000000000".into(),
        ..Default::default()
    };
    let served = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        eprintln!("empty-server: serving on {}", listener.local_addr()?);
        tonic::transport::Server::builder()
            .add_service(
                pb::authorization_service_server::AuthorizationServiceServer::new(Empty(response)),
            )
            // As `pdp serve`: answers go out at once (TCP_NODELAY on accepted connections).
            .serve_with_incoming(tokio_stream::StreamExt::map(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                |conn| {
                    if let Ok(c) = &conn {
                        let _ = c.set_nodelay(true);
                    }
                    conn
                },
            ))
            .await
            .map_err(std::io::Error::other)
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

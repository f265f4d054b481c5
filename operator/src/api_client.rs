//! The operator's Kubernetes client, with every request counted by verb in
//! `keyward_api_requests_total`: the API traffic the operator causes is the
//! figure that matters at scale, and the API server cannot attribute it.

use crate::metrics::Metrics;
use http::{Method, Request, Uri};
use kube::client::{Body, ClientBuilder};
use kube::{Client, Config};
use std::sync::Arc;
use tower::util::MapRequestLayer;

/// A client from the in-cluster config or `KUBECONFIG`, counting requests.
pub async fn counted(metrics: Arc<Metrics>) -> Result<Client, kube::Error> {
    let config = Config::infer().await.map_err(kube::Error::InferConfig)?;
    let count = MapRequestLayer::new(move |request: Request<Body>| {
        metrics.api_request(verb(request.method(), request.uri()));
        request
    });
    Ok(ClientBuilder::try_from(config)?.with_layer(&count).build())
}

/// The verb the API server would log for this request.
pub fn verb(method: &Method, uri: &Uri) -> &'static str {
    let collection = is_collection(uri.path());
    match *method {
        Method::GET if is_watch(uri.query()) => "watch",
        Method::GET if collection => "list",
        Method::GET => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if collection => "deletecollection",
        Method::DELETE => "delete",
        _ => "other",
    }
}

fn is_watch(query: Option<&str>) -> bool {
    query.is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"))
}

/// `/api/v1[/namespaces/<ns>]/<resource>` or `/apis/<group>/<version>[...]`
/// without an object name.
fn is_collection(path: &str) -> bool {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = match segments.first() {
        Some(&"api") => segments.get(2..),
        Some(&"apis") => segments.get(3..),
        _ => None,
    };
    let Some(mut rest) = rest else {
        return false;
    };
    if rest.len() >= 3 && rest[0] == "namespaces" {
        rest = &rest[2..];
    }
    rest.len() == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(method: Method, uri: &str) -> &'static str {
        verb(&method, &uri.parse().unwrap())
    }

    #[test]
    fn verbs_match_the_api_servers_names() {
        let secrets = "/apis/keyward.io/v1alpha1/namespaces/apps/sealedsecrets";
        assert_eq!(of(Method::GET, secrets), "list");
        assert_eq!(of(Method::GET, &format!("{secrets}?limit=500")), "list");
        assert_eq!(
            of(
                Method::GET,
                &format!("{secrets}?watch=true&timeoutSeconds=290")
            ),
            "watch"
        );
        assert_eq!(of(Method::GET, &format!("{secrets}/db")), "get");
        assert_eq!(of(Method::PATCH, &format!("{secrets}/db/status")), "patch");
        assert_eq!(of(Method::POST, secrets), "create");
        assert_eq!(
            of(Method::PUT, "/api/v1/namespaces/ops/secrets/keyring"),
            "update"
        );
        assert_eq!(of(Method::GET, "/api/v1/namespaces/ops"), "get");
        assert_eq!(of(Method::GET, "/api/v1/namespaces"), "list");
        assert_eq!(
            of(Method::GET, "/apis/keyward.io/v1alpha1/managedkeys"),
            "list"
        );
        assert_eq!(of(Method::DELETE, secrets), "deletecollection");
        assert_eq!(of(Method::DELETE, &format!("{secrets}/db")), "delete");
    }
}

//! `keyward destruction`: the two steps of two-person destruction as
//! commands. They write the plain annotations (`Destroy`, `approve`) that
//! Keyward's admission stamps with the user and time, then read back and
//! show what was recorded and what the other person does next.

use crate::args::{DestructionArgs, DestructionCommand};
use crate::day2::{patch, target};
use crate::kube_client::{self, Cluster};
use anyhow::{Result, bail};
use keyward_crds::ManagedKey;
use keyward_crds::destruction::{
    APPROVAL, APPROVAL_LIFETIME, REQUEST, REQUEST_LIFETIME, Request, action_list, parse_approval,
    parse_request,
};
use keyward_crds::managed_key::REASON;
use serde_json::json;

pub async fn run(args: DestructionArgs) -> Result<()> {
    let cluster = kube_client::connect(&args.kube).await?;
    match args.command {
        DestructionCommand::Request {
            key,
            namespace,
            actions,
            reason,
        } => request(&cluster, namespace.as_deref(), &key, &actions, &reason).await,
        DestructionCommand::Approve {
            key,
            namespace,
            actions,
        } => approve(&cluster, namespace.as_deref(), &key, &actions).await,
        DestructionCommand::Show { key, namespace } => {
            let (namespace, name, key) = target(&cluster, namespace.as_deref(), &key).await?;
            print!("{}", describe(&key, &format!("{namespace}/{name}")));
            Ok(())
        }
    }
}

async fn request(
    cluster: &Cluster,
    namespace: Option<&str>,
    key: &str,
    actions: &[String],
    reason: &str,
) -> Result<()> {
    let (namespace, name, _) = target(cluster, namespace, key).await?;
    let annotations = json!({ REQUEST: actions.join(","), REASON: reason });
    patch(
        cluster,
        &namespace,
        &name,
        json!({"metadata": {"annotations": annotations}}),
    )
    .await?;
    let (_, _, key) = target(cluster, Some(&namespace), &name).await?;
    let reference = format!("{namespace}/{name}");
    let stamped = stamped_request(&key, &reference)?;
    eprintln!(
        "requested {} on ManagedKey {reference} as {} at {}; a different user approves \
         within {} h: keyward destruction approve {reference}",
        action_list(&stamped.actions),
        stamped.by,
        stamped.at,
        REQUEST_LIFETIME.as_hours()
    );
    Ok(())
}

async fn approve(
    cluster: &Cluster,
    namespace: Option<&str>,
    key: &str,
    expected: &[String],
) -> Result<()> {
    let (namespace, name, key) = target(cluster, namespace, key).await?;
    let reference = format!("{namespace}/{name}");
    let request = stamped_request(&key, &reference)?;
    let asked = action_list(&request.actions);
    if !expected.is_empty() {
        let mut expected: Vec<&str> = expected.iter().map(String::as_str).collect();
        expected.sort_unstable();
        expected.dedup();
        let mut actual: Vec<String> = request.actions.iter().map(|a| a.to_string()).collect();
        actual.sort_unstable();
        if actual != expected {
            bail!(
                "the request on ManagedKey {reference} is for {asked} (by {}), not {}; read it \
                 with `keyward destruction show {reference}`",
                request.by,
                expected.join(",")
            );
        }
    }
    patch(
        cluster,
        &namespace,
        &name,
        json!({"metadata": {"annotations": {APPROVAL: "approve"}}}),
    )
    .await?;
    let (_, _, key) = target(cluster, Some(&namespace), &name).await?;
    let approval = key
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(APPROVAL))
        .map(|v| parse_approval(v))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let Some(approval) = approval else {
        bail!("the approval on ManagedKey {reference} was not recorded; retry");
    };
    eprintln!(
        "approved {}'s request for {asked} on ManagedKey {reference} as {} at {}; either of \
         you makes the change within {} h",
        request.by,
        approval.by,
        approval.at,
        APPROVAL_LIFETIME.as_hours()
    );
    Ok(())
}

/// The key's stamped request, or what to do when there is none.
fn stamped_request(key: &ManagedKey, reference: &str) -> Result<Request> {
    let Some(value) = annotation(key, REQUEST) else {
        bail!(
            "ManagedKey {reference} has no destruction request; one user asks first: \
             keyward destruction request {reference} --action Destroy --reason ..."
        );
    };
    parse_request(value).map_err(anyhow::Error::msg)
}

fn annotation<'a>(key: &'a ManagedKey, name: &str) -> Option<&'a str> {
    key.metadata
        .annotations
        .as_ref()?
        .get(name)
        .map(String::as_str)
}

/// The request and approval on `key`, for `show`.
fn describe(key: &ManagedKey, reference: &str) -> String {
    let mut out = format!(
        "ManagedKey {reference}: twoPersonDestruction {} on the key (the namespace label \
         keyward.io/two-person-destruction may also apply)\n",
        if key.spec.two_person_destruction {
            "on"
        } else {
            "off"
        }
    );
    match annotation(key, REQUEST).map(parse_request) {
        None => out.push_str("request:  none\n"),
        Some(Ok(r)) => out.push_str(&format!(
            "request:  {} by {} at {} (valid {} h)\n",
            action_list(&r.actions),
            r.by,
            r.at,
            REQUEST_LIFETIME.as_hours()
        )),
        Some(Err(why)) => out.push_str(&format!("request:  unusable: {why}\n")),
    }
    match annotation(key, APPROVAL).map(parse_approval) {
        None => out.push_str("approval: none\n"),
        Some(Ok(a)) => out.push_str(&format!(
            "approval: by {} at {}, of {}'s request for {} made at {} (valid {} h)\n",
            a.by,
            a.at,
            a.request_by,
            action_list(&a.request_actions),
            a.request_at,
            APPROVAL_LIFETIME.as_hours()
        )),
        Some(Err(why)) => out.push_str(&format!("approval: unusable: {why}\n")),
    }
    if let Some(reason) = annotation(key, REASON) {
        out.push_str(&format!("reason:   {reason}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(annotations: serde_json::Value) -> ManagedKey {
        serde_json::from_value(json!({
            "apiVersion": "keyward.io/v1alpha1", "kind": "ManagedKey",
            "metadata": {"name": "db", "namespace": "shop", "annotations": annotations},
            "spec": {"provider": {"local": {}}, "twoPersonDestruction": true},
        }))
        .unwrap()
    }

    #[test]
    fn show_names_both_people_and_what_they_agreed() {
        let request = r#"{"actions":["Destroy"],"by":"alice","at":"2026-12-07T17:00:00Z"}"#;
        let approval = r#"{"by":"bob","at":"2026-12-07T17:05:00Z","requestBy":"alice","requestAt":"2026-12-07T17:00:00Z","requestActions":["Destroy"]}"#;
        let text = describe(
            &key(json!({REQUEST: request, APPROVAL: approval, REASON: "INC-42"})),
            "shop/db",
        );
        assert!(text.contains("twoPersonDestruction on"), "{text}");
        assert!(
            text.contains("request:  Destroy by alice at 2026-12-07T17:00:00Z"),
            "{text}"
        );
        assert!(
            text.contains(
                "approval: by bob at 2026-12-07T17:05:00Z, of alice's request for Destroy"
            ),
            "{text}"
        );
        assert!(text.contains("reason:   INC-42"), "{text}");
        let none = describe(&key(json!({})), "shop/db");
        assert!(
            none.contains("request:  none") && none.contains("approval: none"),
            "{none}"
        );
        let plain = describe(&key(json!({REQUEST: "Destroy"})), "shop/db");
        assert!(plain.contains("request:  unusable"), "{plain}");
    }

    #[test]
    fn approving_without_a_request_says_who_asks_first() {
        let error = stamped_request(&key(json!({})), "shop/db")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("keyward destruction request shop/db --action Destroy"),
            "{error}"
        );
    }
}

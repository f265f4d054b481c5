use crate::args::InspectArgs;
use crate::manifest;
use crate::unseal::target_of;
use anyhow::{Result, bail};
use keyward_core::envelope::Envelope;
use keyward_core::provider::WrapAlgorithm;
use serde::Serialize;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ItemFacts {
    item: String,
    size: Option<usize>,
    key: Option<String>,
    key_version: Option<u32>,
    provider_key_id: Option<String>,
    wrap: Option<&'static str>,
    scope: Option<String>,
    problem: Option<String>,
}

pub fn run(args: InspectArgs) -> Result<()> {
    let source = manifest::source_name(&args.file);
    let sealed = manifest::parse_sealed_secret(&manifest::read_input(&args.file)?, &source)?;
    let target = target_of(&sealed, &source)?;
    let facts: Vec<ItemFacts> = sealed
        .spec
        .encrypted_data
        .iter()
        .map(|(item, text)| {
            let parsed = Envelope::decode(text);
            let problem = match &parsed {
                Err(error) => Some(error.to_string()),
                Ok(envelope) => envelope
                    .check_context(&target.item(item))
                    .err()
                    .map(|e| e.to_string()),
            };
            let envelope = parsed.ok();
            ItemFacts {
                item: item.clone(),
                size: envelope.as_ref().map(Envelope::plaintext_len),
                key: envelope.as_ref().map(|e| e.context.key_ref.clone()),
                key_version: envelope.as_ref().map(|e| e.key_version),
                provider_key_id: envelope.as_ref().map(|e| e.provider_key_id.clone()),
                wrap: envelope.as_ref().map(|e| match e.wrap_algorithm {
                    WrapAlgorithm::Symmetric => "provider",
                    WrapAlgorithm::RsaOaepSha256 => "rsa-oaep-sha256",
                }),
                scope: envelope.as_ref().map(|e| e.context.scope.to_string()),
                problem,
            }
        })
        .collect();

    if args.json {
        manifest::print(&facts, true)?;
    } else {
        println!(
            "{:<24} {:>9} {:<24} {:>7} {:<22} {:<16} {:<9}",
            "ITEM", "BYTES", "KEY", "VERSION", "PROVIDER-KEY", "WRAP", "SCOPE"
        );
        for fact in &facts {
            let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
            println!(
                "{:<24} {:>9} {:<24} {:>7} {:<22} {:<16} {:<9}",
                fact.item,
                fact.size.map_or("-".into(), |s| s.to_string()),
                text(&fact.key),
                fact.key_version.map_or("-".into(), |v| v.to_string()),
                text(&fact.provider_key_id),
                fact.wrap.unwrap_or("-"),
                text(&fact.scope),
            );
        }
        for fact in facts.iter().filter(|f| f.problem.is_some()) {
            eprintln!(
                "item `{}`: {}",
                fact.item,
                fact.problem.as_deref().unwrap_or_default()
            );
        }
    }
    let broken = facts.iter().filter(|f| f.problem.is_some()).count();
    if broken > 0 {
        bail!(
            "{broken} of {} items cannot be opened as they are (see above)",
            facts.len()
        );
    }
    Ok(())
}

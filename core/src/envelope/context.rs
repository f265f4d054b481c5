use crate::provider::WrapContext;
use std::fmt;
use std::str::FromStr;

/// What a sealed value is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Scope {
    /// Namespace, secret name, item name and key: the value opens only where it was sealed for.
    #[default]
    Strict,
    /// Namespace and key: the value may move between secrets of one namespace.
    Namespace,
}

impl Scope {
    pub fn code(self) -> u8 {
        match self {
            Scope::Strict => 1,
            Scope::Namespace => 2,
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Scope::Strict),
            2 => Some(Scope::Namespace),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Strict => "strict",
            Scope::Namespace => "namespace",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "strict" => Ok(Scope::Strict),
            "namespace" => Ok(Scope::Namespace),
            _ => Err(format!("unknown scope `{s}`; use `strict` or `namespace`")),
        }
    }
}

/// The secret a set of values is sealed for: everything in the context
/// except the item name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretTarget {
    pub scope: Scope,
    pub namespace: String,
    pub secret_name: String,
    /// The ManagedKey reference (`name` or `namespace/name`).
    pub key_ref: String,
    /// The ServiceAccounts that may unseal (`spec.access`); empty: any.
    pub access: Vec<String>,
}

impl SecretTarget {
    /// The context of one item: sealing binds `access` into its header,
    /// and opening checks the header's against it.
    pub fn item(&self, item: &str) -> ScopeContext {
        ScopeContext::new(
            self.scope,
            &self.namespace,
            &self.secret_name,
            item,
            &self.key_ref,
        )
        .with_access(&self.access)
    }

    /// The context the DEK is wrapped under. Items are not part of it: one
    /// DEK serves all items of a secret.
    pub fn wrap_context(&self) -> WrapContext {
        let mut context = WrapContext::new();
        context.insert("keyward.io/scope".into(), self.scope.as_str().into());
        context.insert("keyward.io/namespace".into(), self.namespace.clone());
        context.insert("keyward.io/key".into(), self.key_ref.clone());
        if self.scope == Scope::Strict {
            context.insert("keyward.io/secret".into(), self.secret_name.clone());
        }
        context
    }
}

/// The full context of one sealed value, as recorded in its header. Fields a
/// scope does not bind are empty, so the header is canonical.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeContext {
    pub scope: Scope,
    pub namespace: String,
    pub secret_name: String,
    pub item: String,
    pub key_ref: String,
    /// The ServiceAccounts the value was sealed for, sorted and distinct
    /// (empty: any); `None` in a version 1 header, which bound none.
    pub access: Option<Vec<String>>,
}

impl ScopeContext {
    pub fn new(
        scope: Scope,
        namespace: &str,
        secret_name: &str,
        item: &str,
        key_ref: &str,
    ) -> Self {
        let (secret_name, item) = match scope {
            Scope::Strict => (secret_name, item),
            Scope::Namespace => ("", ""),
        };
        ScopeContext {
            scope,
            namespace: namespace.to_owned(),
            secret_name: secret_name.to_owned(),
            item: item.to_owned(),
            key_ref: key_ref.to_owned(),
            access: None,
        }
    }

    /// Binds the ServiceAccounts that may unseal (empty: any), in the
    /// canonical order the header records.
    pub fn with_access(mut self, service_accounts: &[String]) -> Self {
        let mut access = service_accounts.to_vec();
        access.sort();
        access.dedup();
        self.access = Some(access);
        self
    }

    /// `Some((sealed for, opened for))` when the value is opened for
    /// ServiceAccounts its header did not grant: any at all while it names
    /// some, or one it does not name. Narrowing is allowed; a version 1
    /// header bound nothing, so it never refuses.
    pub(crate) fn widened_access(&self, expected: &ScopeContext) -> Option<(String, String)> {
        let sealed = self.access.as_deref().filter(|a| !a.is_empty())?;
        let opened = expected.access.as_deref().unwrap_or_default();
        let within = !opened.is_empty() && opened.iter().all(|sa| sealed.contains(sa));
        (!within).then(|| (sealed.join(", "), describe_access(opened)))
    }

    /// The first field where `self` (the header) differs from `expected`.
    pub(crate) fn first_difference(
        &self,
        expected: &ScopeContext,
    ) -> Option<(&'static str, String, String)> {
        [
            ("scope", self.scope.as_str(), expected.scope.as_str()),
            ("namespace", &self.namespace, &expected.namespace),
            ("secret name", &self.secret_name, &expected.secret_name),
            ("item", &self.item, &expected.item),
            ("key", &self.key_ref, &expected.key_ref),
        ]
        .into_iter()
        .find(|(_, sealed, opened)| sealed != opened)
        .map(|(field, sealed, opened)| (field, sealed.to_owned(), opened.to_owned()))
    }
}

/// "api, worker", or "any ServiceAccount" for an empty list.
pub fn describe_access(access: &[String]) -> String {
    if access.is_empty() {
        "any ServiceAccount".into()
    } else {
        access.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_scope_drops_secret_and_item() {
        let context = ScopeContext::new(Scope::Namespace, "ns", "db", "password", "k");
        assert_eq!(
            (context.secret_name.as_str(), context.item.as_str()),
            ("", "")
        );
    }

    #[test]
    fn wrap_context_binds_secret_only_in_strict_scope() {
        let mut target = SecretTarget {
            scope: Scope::Strict,
            namespace: "ns".into(),
            secret_name: "db".into(),
            key_ref: "k".into(),
            access: Vec::new(),
        };
        assert_eq!(
            target
                .wrap_context()
                .get("keyward.io/secret")
                .map(String::as_str),
            Some("db")
        );
        target.scope = Scope::Namespace;
        assert!(!target.wrap_context().contains_key("keyward.io/secret"));
    }

    #[test]
    fn access_may_narrow_but_not_widen() {
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let context = |access: Option<&[&str]>| {
            let base = ScopeContext::new(Scope::Strict, "ns", "db", "pw", "k");
            match access {
                Some(list) => base.with_access(&names(list)),
                None => base,
            }
        };
        let sealed = context(Some(&["worker", "api", "api"]));
        assert_eq!(sealed.access, Some(names(&["api", "worker"])));
        assert_eq!(sealed.widened_access(&context(Some(&["api"]))), None);
        assert_eq!(
            sealed.widened_access(&context(Some(&["worker", "api"]))),
            None
        );
        assert_eq!(
            sealed.widened_access(&context(Some(&[]))),
            Some(("api, worker".into(), "any ServiceAccount".into()))
        );
        assert_eq!(
            sealed.widened_access(&context(Some(&["api", "intruder"]))),
            Some(("api, worker".into(), "api, intruder".into()))
        );
        assert!(sealed.widened_access(&context(None)).is_some());
        // Sealed for any ServiceAccount, or by version 1: anything goes.
        let open = context(Some(&[]));
        assert_eq!(open.widened_access(&context(Some(&["api"]))), None);
        assert_eq!(context(None).widened_access(&context(Some(&[]))), None);
    }

    #[test]
    fn first_difference_names_the_field() {
        let sealed = ScopeContext::new(Scope::Strict, "a", "db", "pw", "k");
        let opened = ScopeContext::new(Scope::Strict, "b", "db", "pw", "k");
        assert_eq!(
            sealed.first_difference(&opened),
            Some(("namespace", "a".into(), "b".into()))
        );
        assert_eq!(sealed.first_difference(&sealed), None);
    }
}

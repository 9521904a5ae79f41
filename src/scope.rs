//! What a vended token may do: the scope policy (`TOKEN_SCOPES`) and the
//! concrete scope granted to one caller.
//!
//! This module owns the policy's shape and validation (roles, caches, topics,
//! the `{sub}` placeholder, the 10-permission ceiling), how a caller's groups
//! select permissions (union of listed groups, else `default`), and a stable
//! fingerprint of a granted scope for cache keys. It knows nothing of Momento's
//! SDK: [`crate::momento`] turns a [`Scope`] into the SDK's permissions.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

/// Momento accepts at most this many permissions (policy statements) in one
/// disposable token (its auth service quotas).
pub const MAX_PERMISSIONS: usize = 20;

/// The placeholder in a topic name that becomes the caller's `sub`.
pub const SUB_PLACEHOLDER: &str = "{sub}";

/// What a token may do with a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
pub enum Role {
    #[serde(rename = "subscribe")]
    Subscribe,
    #[serde(rename = "publish")]
    Publish,
    #[serde(rename = "publish-subscribe")]
    PublishSubscribe,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Subscribe => "subscribe",
            Role::Publish => "publish",
            Role::PublishSubscribe => "publish-subscribe",
        }
    }
}

/// Which topics of a cache.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Topics {
    /// Every topic (`"*"`).
    All,
    /// One topic by name.
    Named(String),
}

/// One permission of a granted scope.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Permission {
    pub role: Role,
    pub cache: String,
    pub topics: Topics,
}

/// The permissions granted to one caller: sorted, without duplicates.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope(Vec<Permission>);

impl Scope {
    /// Sorts and de-duplicates `permissions`.
    pub fn new(mut permissions: Vec<Permission>) -> Self {
        permissions.sort();
        permissions.dedup();
        Scope(permissions)
    }

    /// The seed's scope: subscribe to every topic of `cache`.
    pub fn subscribe_all(cache: &str) -> Self {
        Scope(vec![Permission {
            role: Role::Subscribe,
            cache: cache.to_string(),
            topics: Topics::All,
        }])
    }

    pub fn permissions(&self) -> &[Permission] {
        &self.0
    }

    /// A stable 16-hex-digit fingerprint (FNV-1a, 64 bits) of the scope, for
    /// cache keys: the same in every container and every build, unlike
    /// `std`'s hasher, so a scope's cached tokens are found by all of them.
    pub fn fingerprint(&self) -> String {
        let mut canonical = String::new();
        for p in &self.0 {
            let topic = match &p.topics {
                Topics::All => "*",
                Topics::Named(name) => name.as_str(),
            };
            canonical.push_str(&format!(
                "{}\u{1f}{}\u{1f}{}\u{1e}",
                p.role.as_str(),
                p.cache,
                topic
            ));
        }
        format!("{:016x}", fnv1a(canonical.as_bytes()))
    }
}

/// FNV-1a, 64 bits: tiny, stable, and good enough to tell scopes apart in keys.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A permission as configured: its topic may hold `{sub}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionRule {
    pub role: Role,
    pub cache: String,
    pub topic: String,
}

impl PermissionRule {
    fn uses_sub(&self) -> bool {
        self.topic.contains(SUB_PLACEHOLDER)
    }

    /// The permission for a caller whose `sub` is `sub` (none for anonymous callers).
    fn grant(&self, sub: Option<&str>) -> Permission {
        let topics = match self.topic.as_str() {
            "*" => Topics::All,
            name => Topics::Named(match sub {
                Some(sub) => name.replace(SUB_PLACEHOLDER, sub),
                None => name.to_string(),
            }),
        };
        Permission {
            role: self.role,
            cache: self.cache.clone(),
            topics,
        }
    }
}

/// `TOKEN_SCOPES`: the default permissions, and those of each listed group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopePolicy {
    default: Vec<PermissionRule>,
    groups: BTreeMap<String, Vec<PermissionRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    default: Vec<PermissionRule>,
    #[serde(default)]
    groups: BTreeMap<String, Vec<PermissionRule>>,
}

impl ScopePolicy {
    /// No `TOKEN_SCOPES`: the seed's scope for everyone.
    pub fn builtin(cache: &str) -> Self {
        ScopePolicy {
            default: vec![PermissionRule {
                role: Role::Subscribe,
                cache: cache.to_string(),
                topic: "*".to_string(),
            }],
            groups: BTreeMap::new(),
        }
    }

    /// Parses and validates `TOKEN_SCOPES`. `signed_in` says whether callers
    /// carry a `sub` and groups (Cognito mode). Without them only `default`
    /// applies (groups are validated but never granted), and a `{sub}` in
    /// `default` is refused: there would be nothing to put in its place.
    /// Errors describe the problem in words a deployer can act on.
    pub fn parse(json: &str, signed_in: bool) -> Result<Self, String> {
        let raw: RawPolicy = serde_json::from_str(json).map_err(|e| {
            format!(
                "not a valid scope policy ({e}); expected {{\"default\": [{{\"role\": \"subscribe\", \"cache\": \"pizza\", \"topic\": \"*\"}}], \"groups\": {{...}}}}"
            )
        })?;
        let check = |name: &str,
                     rules: &[PermissionRule],
                     applies_anonymously: bool|
         -> Result<(), String> {
            if rules.is_empty() {
                return Err(format!("{name} grants no permission"));
            }
            for rule in rules {
                if rule.cache.is_empty()
                    || !rule
                        .cache
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                {
                    return Err(format!(
                        "{name}: cache names use ASCII letters, digits, '-', '_' or '.' only"
                    ));
                }
                if rule.topic.trim().is_empty() || rule.topic.trim() != rule.topic {
                    return Err(format!(
                        "{name}: a topic is a name or \"*\", without surrounding spaces"
                    ));
                }
                if rule.topic != "*" && rule.topic.contains('*') {
                    return Err(format!(
                        "{name}: \"*\" means all topics and cannot be part of a name (no prefixes)"
                    ));
                }
                if rule.uses_sub() && applies_anonymously && !signed_in {
                    return Err(format!(
                        "{name}: {SUB_PLACEHOLDER} needs signed-in callers (CALLER_IDENTITY=cognito)"
                    ));
                }
            }
            Ok(())
        };
        check("default", &raw.default, true)?;
        for (group, rules) in &raw.groups {
            if group.is_empty() {
                return Err("a group name is empty".into());
            }
            // API Gateway hands a REST API's groups over as one comma-separated
            // string and an HTTP API's as "[a b]": a name holding a separator
            // could never be matched reliably (`x,staff` would read as `staff`).
            if group
                .chars()
                .any(|c| c == ',' || c == '[' || c == ']' || c.is_whitespace())
            {
                return Err(format!(
                    "group {group:?}: a group name may not contain a comma, a bracket or a space (API Gateway uses them to list a user's groups)"
                ));
            }
            check(&format!("group {group:?}"), rules, false)?;
        }
        let distinct = |rules: &mut dyn Iterator<Item = &PermissionRule>| {
            let mut all: Vec<&PermissionRule> = rules.collect();
            all.sort();
            all.dedup();
            all.len()
        };
        if distinct(&mut raw.default.iter()) > MAX_PERMISSIONS {
            return Err(format!(
                "default grants more than {MAX_PERMISSIONS} permissions (Momento's limit per token)"
            ));
        }
        // A caller in every listed group gets their union: the worst case.
        let union = distinct(&mut raw.groups.values().flatten());
        if union > MAX_PERMISSIONS {
            return Err(format!(
                "a caller in every listed group would get {union} permissions; Momento allows {MAX_PERMISSIONS} per token"
            ));
        }
        Ok(ScopePolicy {
            default: raw.default,
            groups: raw.groups,
        })
    }

    /// Whether `default` lets its callers publish (`publish` or
    /// `publish-subscribe` on any topic).
    pub fn default_may_publish(&self) -> bool {
        self.default.iter().any(|r| r.role != Role::Subscribe)
    }

    /// The scope of a caller: the union of the listed groups they belong to,
    /// else `default`; `{sub}` replaced by `sub`.
    pub fn grant(&self, sub: Option<&str>, groups: &[String]) -> Scope {
        let listed: Vec<&PermissionRule> = groups
            .iter()
            .filter_map(|g| self.groups.get(g))
            .flatten()
            .collect();
        let rules: Vec<&PermissionRule> = if listed.is_empty() {
            self.default.iter().collect()
        } else {
            listed
        };
        Scope::new(rules.into_iter().map(|r| r.grant(sub)).collect())
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            let topic = match &p.topics {
                Topics::All => "*",
                Topics::Named(n) => n,
            };
            write!(f, "{} {}/{}", p.role.as_str(), p.cache, topic)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{
        "default": [{"role": "subscribe", "cache": "pizza", "topic": "orders-{sub}"}],
        "groups": {
            "staff": [{"role": "publish-subscribe", "cache": "pizza", "topic": "*"}],
            "drivers": [
                {"role": "publish", "cache": "pizza", "topic": "positions"},
                {"role": "publish-subscribe", "cache": "pizza", "topic": "*"}
            ]
        }
    }"#;

    fn perm(role: Role, topic: &str) -> Permission {
        Permission {
            role,
            cache: "pizza".into(),
            topics: if topic == "*" {
                Topics::All
            } else {
                Topics::Named(topic.into())
            },
        }
    }

    #[test]
    fn the_builtin_policy_is_the_seeds_scope() {
        let policy = ScopePolicy::builtin("pizza");
        assert_eq!(policy.grant(None, &[]), Scope::subscribe_all("pizza"));
        assert_eq!(
            policy.grant(Some("u"), &["staff".into()]),
            Scope::subscribe_all("pizza"),
            "no groups listed: everyone gets default"
        );
    }

    #[test]
    fn sub_is_substituted_and_unlisted_groups_fall_back_to_default() {
        let policy = ScopePolicy::parse(EXAMPLE, true).unwrap();
        let scope = policy.grant(Some("abc-123"), &["customers".into()]);
        assert_eq!(
            scope.permissions(),
            [perm(Role::Subscribe, "orders-abc-123")]
        );
    }

    #[test]
    fn groups_are_a_union_without_duplicates_and_replace_default() {
        let policy = ScopePolicy::parse(EXAMPLE, true).unwrap();
        let both = policy.grant(Some("u1"), &["staff".into(), "drivers".into()]);
        assert_eq!(
            both.permissions(),
            [
                perm(Role::Publish, "positions"),
                perm(Role::PublishSubscribe, "*")
            ]
        );
        let order_independent = policy.grant(Some("u1"), &["drivers".into(), "staff".into()]);
        assert_eq!(both, order_independent);
        assert_eq!(both.fingerprint(), order_independent.fingerprint());
    }

    #[test]
    fn fingerprints_tell_scopes_apart_and_are_stable() {
        let a = Scope::subscribe_all("pizza");
        let b = Scope::subscribe_all("pasta");
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint().len(), 16);
        // Fixed across builds: FNV-1a of the canonical form.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn invalid_policies_are_refused_with_a_reason() {
        let cases: &[(&str, bool, &str)] = &[
            ("not json", true, "not a valid scope policy"),
            (r#"{"groups": {}}"#, true, "not a valid scope policy"),
            (
                r#"{"default": [{"role": "admin", "cache": "pizza", "topic": "*"}]}"#,
                true,
                "not a valid scope policy",
            ),
            (
                r#"{"default": [{"role": "subscribe", "cache": "pizza", "topic": "*", "x": 1}]}"#,
                true,
                "not a valid scope policy",
            ),
            (r#"{"default": []}"#, true, "grants no permission"),
            (
                r#"{"default": [{"role": "subscribe", "cache": "pi/zza", "topic": "*"}]}"#,
                true,
                "cache names",
            ),
            (
                r#"{"default": [{"role": "subscribe", "cache": "pizza", "topic": ""}]}"#,
                true,
                "a topic is a name",
            ),
            (
                r#"{"default": [{"role": "subscribe", "cache": "pizza", "topic": "orders-*"}]}"#,
                true,
                "no prefixes",
            ),
            (
                r#"{"default": [{"role": "subscribe", "cache": "pizza", "topic": "orders-{sub}"}]}"#,
                false,
                "CALLER_IDENTITY=cognito",
            ),
        ];
        for (json, signed_in, expected) in cases {
            let err = ScopePolicy::parse(json, *signed_in).unwrap_err();
            assert!(err.contains(expected), "{json}: {err}");
        }
    }

    #[test]
    fn without_signed_in_callers_only_default_applies() {
        let policy =
            ScopePolicy::parse(EXAMPLE.replace("orders-{sub}", "orders").as_str(), false).unwrap();
        assert_eq!(
            policy.grant(None, &[]).permissions(),
            [perm(Role::Subscribe, "orders")]
        );
    }

    #[test]
    fn a_group_name_holding_a_list_separator_is_refused() {
        for name in ["x,staff", "a b", "[staff]"] {
            let policy = format!(
                r#"{{"default": [{{"role": "subscribe", "cache": "pizza", "topic": "*"}}], "groups": {{"{name}": [{{"role": "subscribe", "cache": "pizza", "topic": "t"}}]}}}}"#
            );
            let err = ScopePolicy::parse(&policy, true).unwrap_err();
            assert!(err.contains("may not contain a comma"), "{name}: {err}");
        }
    }

    #[test]
    fn a_default_that_publishes_is_told_apart() {
        let policy = ScopePolicy::parse(EXAMPLE, true).unwrap();
        assert!(
            !policy.default_may_publish(),
            "groups may publish; default does not"
        );
        assert!(!ScopePolicy::builtin("pizza").default_may_publish());
        for role in ["publish", "publish-subscribe"] {
            let json = format!(
                r#"{{"default": [{{"role": "subscribe", "cache": "pizza", "topic": "*"}}, {{"role": "{role}", "cache": "pizza", "topic": "t"}}]}}"#
            );
            assert!(ScopePolicy::parse(&json, false)
                .unwrap()
                .default_may_publish());
        }
    }

    #[test]
    fn a_policy_that_could_exceed_twenty_permissions_is_refused() {
        let rules = |from: usize, to: usize| {
            (from..to)
                .map(|i| format!(r#"{{"role": "subscribe", "cache": "pizza", "topic": "t{i}"}}"#))
                .collect::<Vec<_>>()
                .join(",")
        };
        let default_over = format!(r#"{{"default": [{}]}}"#, rules(0, MAX_PERMISSIONS + 1));
        assert!(ScopePolicy::parse(&default_over, true)
            .unwrap_err()
            .contains("more than 20"));
        let default_at = format!(r#"{{"default": [{}]}}"#, rules(0, MAX_PERMISSIONS));
        assert!(ScopePolicy::parse(&default_at, true).is_ok());
        let two_groups = |a: String, b: String| {
            let policy = format!(
                r#"{{"default": [{}], "groups": {{"a": [{a}], "b": [{b}]}}}}"#,
                rules(0, 1)
            );
            ScopePolicy::parse(&policy, true)
        };
        // Two groups of eleven: a member of both would get twenty-two.
        assert!(two_groups(rules(0, 11), rules(11, 22))
            .unwrap_err()
            .contains("22 permissions"));
        // Overlapping groups whose union stays at twenty are fine.
        assert!(two_groups(rules(0, 20), rules(0, 20)).is_ok());
    }
}

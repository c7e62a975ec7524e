//! DescribeUserScramCredentials and AlterUserScramCredentials (v0): the SCRAM
//! credentials SASL authenticates against, as Kafka answers them
//! (`ScramImage.describe`, `ScramControlManager.alterCredentials`).
//!
//! Describing needs DESCRIBE on the cluster, altering ALTER on it
//! (CLUSTER_AUTHORIZATION_FAILED otherwise, for the whole request). No
//! salt, key or password ever leaves the broker: a description is a
//! mechanism and an iteration count. Every user is answered on its own: a
//! user described twice, or one credential (user and mechanism) altered
//! twice, in one request is DUPLICATE_RESOURCE, an unknown user
//! asked for by name or a credential to delete that does not exist
//! RESOURCE_NOT_FOUND, a mechanism code other than SCRAM-SHA-256 (1) and
//! SCRAM-SHA-512 (2) UNSUPPORTED_SASL_MECHANISM, and an upsertion whose
//! iterations, salt, salted password or user name the broker refuses
//! UNACCEPTABLE_CREDENTIAL. The credentials' lock is held across their
//! store's fsync, so both run on the blocking pool.

use std::collections::{BTreeSet, HashMap, HashSet};

use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, DescribeUserScramCredentialsRequest,
    DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use veltrix_core::acl::AclOperation;
use veltrix_core::auth::{
    Credentials, ITERATIONS_MAX, ITERATIONS_MIN, ScramCredential, ScramMechanism, UserDescription, validate_user_name,
};

use super::Ctx;
use super::authz::CLUSTER_DENIED;
use crate::errors::{Refusal, ResponseError, credential_error};

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

pub(super) async fn describe_user_scram_credentials(
    ctx: Ctx,
    r: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    if !ctx.who().on_cluster(AclOperation::Describe) {
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(text(CLUSTER_DENIED)));
    }
    let broker = ctx.broker.clone();
    let results = tokio::task::spawn_blocking(move || {
        let credentials = broker.credentials();
        // No user, or an empty list: every user with credentials.
        match r.users.as_deref().filter(|users| !users.is_empty()) {
            None => credentials.describe(None).into_iter().map(described).collect(),
            Some(users) => describe_named(credentials, users),
        }
    })
    .await;
    match results {
        Ok(results) => DescribeUserScramCredentialsResponse::default()
            .with_error_message(None)
            .with_results(results),
        Err(_) => DescribeUserScramCredentialsResponse::default()
            .with_error_code(ResponseError::UnknownServerError.code())
            .with_error_message(Some(text("describing the credentials failed"))),
    }
}

fn described(d: UserDescription) -> DescribeUserScramCredentialsResult {
    let infos = d
        .credentials
        .iter()
        .map(|c| {
            CredentialInfo::default()
                .with_mechanism(c.mechanism.code())
                .with_iterations(i32::try_from(c.iterations).unwrap_or(i32::MAX))
        })
        .collect();
    DescribeUserScramCredentialsResult::default()
        .with_user(StrBytes::from_string(d.user))
        .with_error_message(None)
        .with_credential_infos(infos)
}

fn user_failed(user: &str, error: ResponseError, message: String) -> DescribeUserScramCredentialsResult {
    DescribeUserScramCredentialsResult::default()
        .with_user(text(user))
        .with_error_code(error.code())
        .with_error_message(Some(StrBytes::from_string(message)))
}

/// The users asked for, each once, in the order first asked.
fn describe_named(credentials: &Credentials, users: &[UserName]) -> Vec<DescribeUserScramCredentialsResult> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    let mut order = Vec::new();
    for u in users {
        let count = counts.entry(u.name.as_str()).or_default();
        if *count == 0 {
            order.push(u.name.as_str());
        }
        *count += 1;
    }
    let once: Vec<String> = order
        .iter()
        .filter(|u| counts[**u] == 1)
        .map(|u| (*u).to_owned())
        .collect();
    let mut found = credentials.describe(Some(&once)).into_iter();
    order
        .into_iter()
        .map(|user| {
            if counts[user] > 1 {
                return user_failed(
                    user,
                    ResponseError::DuplicateResource,
                    format!("Cannot describe SCRAM credentials for the same user twice in a single request: {user}"),
                );
            }
            match found.next() {
                Some(d) if !d.credentials.is_empty() => described(d),
                _ => user_failed(
                    user,
                    ResponseError::ResourceNotFound,
                    format!("Attempt to describe a user credential that does not exist: {user}"),
                ),
            }
        })
        .collect()
}

/// The user name and mechanism of a change, as Kafka checks them first
/// (`validateScramUsernameAndMechanism`).
fn user_and_mechanism(user: &str, code: i8) -> Result<ScramMechanism, Refusal> {
    if user.is_empty() {
        return Err(Refusal::new(
            ResponseError::UnacceptableCredential,
            "Username must not be empty",
        ));
    }
    ScramMechanism::from_code(code)
        .ok_or_else(|| Refusal::new(ResponseError::UnsupportedSaslMechanism, "Unknown SCRAM mechanism"))
}

fn check_deletion(d: &ScramCredentialDeletion, credentials: &Credentials) -> Result<ScramMechanism, Refusal> {
    let user = d.name.as_str();
    let mechanism = user_and_mechanism(user, d.mechanism)?;
    if credentials.get(user, mechanism).is_none() {
        return Err(Refusal::new(
            ResponseError::ResourceNotFound,
            "Attempt to delete a user credential that does not exist",
        ));
    }
    Ok(mechanism)
}

fn check_upsertion(u: &ScramCredentialUpsertion) -> Result<ScramCredential, Refusal> {
    let user = u.name.as_str();
    let mechanism = user_and_mechanism(user, u.mechanism)?;
    let unacceptable = |m: String| Refusal::new(ResponseError::UnacceptableCredential, m);
    let iterations = match u32::try_from(u.iterations) {
        Ok(i) if i < ITERATIONS_MIN => return Err(unacceptable("Too few iterations".into())),
        Err(_) => return Err(unacceptable("Too few iterations".into())),
        Ok(i) if i > ITERATIONS_MAX => return Err(unacceptable("Too many iterations".into())),
        Ok(i) => i,
    };
    validate_user_name(user).map_err(|reason| unacceptable(reason.to_owned()))?;
    ScramCredential::from_salted_password(mechanism, &u.salted_password, u.salt.to_vec(), iterations)
        .map_err(|e| Refusal::new(credential_error(&e), e.to_string()))
}

/// One change of a user's credentials.
enum Change {
    Delete,
    Upsert(ScramCredential),
}

/// An alteration checked: the changes to make, in request order (deletions
/// first), and the users refused.
#[derive(Default)]
struct Plan {
    changes: Vec<(String, ScramMechanism, Change)>,
    refused: Vec<(String, Refusal)>,
}

/// The users of an alteration refused so far, in the order refused.
#[derive(Default)]
struct Refusals<'r> {
    list: Vec<(String, Refusal)>,
    users: HashSet<&'r str>,
}

impl<'r> Refusals<'r> {
    fn add(&mut self, user: &'r str, why: Refusal) {
        self.list.push((user.to_owned(), why));
        self.users.insert(user);
    }

    fn has(&self, user: &str) -> bool {
        self.users.contains(user)
    }
}

fn duplicate() -> Refusal {
    Refusal::new(
        ResponseError::DuplicateResource,
        "A user credential cannot be altered twice in the same request",
    )
}

/// Checks every change as Kafka's controller does: a user with an invalid
/// change is refused whole (the first reason given), as is a user whose
/// credential of one mechanism is changed twice (a second deletion or
/// upsertion of the same user and mechanism: DUPLICATE_RESOURCE); the other
/// users' changes are all made, so one request can set a user's SCRAM-SHA-256
/// and SCRAM-SHA-512 credentials together, as `kafka-configs` does.
fn plan(r: &AlterUserScramCredentialsRequest, credentials: &Credentials) -> Plan {
    let mut refused = Refusals::default();
    let mut changes: Vec<(&str, ScramMechanism, Change)> = Vec::new();
    for d in &r.deletions {
        let user = d.name.as_str();
        if refused.has(user) {
            continue;
        }
        match check_deletion(d, credentials) {
            Ok(m) => changes.push((user, m, Change::Delete)),
            Err(why) => refused.add(user, why),
        }
    }
    for u in &r.upsertions {
        let user = u.name.as_str();
        if refused.has(user) {
            continue;
        }
        match check_upsertion(u) {
            Ok(c) => changes.push((user, c.mechanism(), Change::Upsert(c))),
            Err(why) => refused.add(user, why),
        }
    }
    let mut seen = HashSet::new();
    for (user, mechanism, _) in &changes {
        if !seen.insert((*user, *mechanism)) && !refused.has(user) {
            refused.add(user, duplicate());
        }
    }
    Plan {
        changes: changes
            .into_iter()
            .filter(|(user, _, _)| !refused.has(user))
            .map(|(user, m, change)| (user.to_owned(), m, change))
            .collect(),
        refused: refused.list,
    }
}

fn altered(user: String, outcome: Result<(), Refusal>) -> AlterUserScramCredentialsResult {
    let result = AlterUserScramCredentialsResult::default().with_user(StrBytes::from_string(user));
    match outcome {
        Ok(()) => result.with_error_message(None),
        Err(r) => result
            .with_error_code(r.error.code())
            .with_error_message(Some(StrBytes::from_string(r.message))),
    }
}

/// Checks and makes the changes, one stored change each; answers each user
/// once (the first failure of its changes, if any), in the order first named,
/// then the users refused, as Kafka does.
fn alter_blocking(
    credentials: &Credentials,
    r: &AlterUserScramCredentialsRequest,
) -> Vec<AlterUserScramCredentialsResult> {
    let plan = plan(r, credentials);
    let failed = |e: veltrix_core::auth::CredentialError| Refusal::new(credential_error(&e), e.to_string());
    let mut outcomes: Vec<(String, Result<(), Refusal>)> = Vec::new();
    for (user, mechanism, change) in plan.changes {
        let outcome = match change {
            Change::Delete => match credentials.delete(&user, mechanism) {
                Ok(true) => Ok(()),
                // Deleted meanwhile by another request.
                Ok(false) => Err(Refusal::new(
                    ResponseError::ResourceNotFound,
                    "Attempt to delete a user credential that does not exist",
                )),
                Err(e) => Err(failed(e)),
            },
            Change::Upsert(credential) => credentials.upsert(&user, credential).map_err(failed),
        };
        match outcomes.iter_mut().find(|(u, _)| *u == user) {
            Some((_, first)) => {
                if first.is_ok() {
                    *first = outcome;
                }
            }
            None => outcomes.push((user, outcome)),
        }
    }
    let mut results: Vec<_> = outcomes
        .into_iter()
        .map(|(user, outcome)| altered(user, outcome))
        .collect();
    results.extend(plan.refused.into_iter().map(|(user, why)| altered(user, Err(why))));
    results
}

pub(super) async fn alter_user_scram_credentials(
    ctx: Ctx,
    r: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    if !ctx.who().on_cluster(AclOperation::Alter) {
        // Every user named, once, in order, as Kafka's error response.
        let users: BTreeSet<&str> = r
            .deletions
            .iter()
            .map(|d| d.name.as_str())
            .chain(r.upsertions.iter().map(|u| u.name.as_str()))
            .collect();
        let denied = || Refusal::new(ResponseError::ClusterAuthorizationFailed, CLUSTER_DENIED);
        let results = users
            .into_iter()
            .map(|u| altered(u.to_owned(), Err(denied())))
            .collect();
        return AlterUserScramCredentialsResponse::default().with_results(results);
    }
    let broker = ctx.broker.clone();
    let results = tokio::task::spawn_blocking(move || alter_blocking(broker.credentials(), &r))
        .await
        .unwrap_or_default();
    AlterUserScramCredentialsResponse::default().with_results(results)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use veltrix_core::auth::{CredentialsConfig, MemoryCredentialStore};

    use super::*;

    fn credentials() -> Credentials {
        Credentials::open(CredentialsConfig::default(), Arc::new(MemoryCredentialStore::default())).unwrap()
    }

    fn upsertion(user: &str, mechanism: ScramMechanism) -> ScramCredentialUpsertion {
        ScramCredentialUpsertion::default()
            .with_name(text(user))
            .with_mechanism(mechanism.code())
            .with_iterations(4096)
            .with_salt(bytes::Bytes::from_static(b"salt"))
            .with_salted_password(bytes::Bytes::from(vec![7u8; mechanism.key_bytes()]))
    }

    fn deletion(user: &str, code: i8) -> ScramCredentialDeletion {
        ScramCredentialDeletion::default()
            .with_name(text(user))
            .with_mechanism(code)
    }

    /// (user, error) of each refusal, in order.
    fn refused(plan: &Plan) -> Vec<(&str, ResponseError)> {
        plan.refused.iter().map(|(u, r)| (u.as_str(), r.error)).collect()
    }

    #[test]
    fn a_user_is_altered_once_per_request_as_kafkas_controller_decides() {
        let credentials = credentials();
        let sha256 = ScramMechanism::Sha256;
        credentials
            .upsert("ann", check_upsertion(&upsertion("ann", sha256)).unwrap())
            .unwrap();
        let r = AlterUserScramCredentialsRequest::default()
            .with_deletions(vec![
                deletion("ann", sha256.code()),
                deletion("bob", sha256.code()),
                deletion("bob", sha256.code()),
                deletion("", sha256.code()),
                deletion("cat", 0),
            ])
            .with_upsertions(vec![
                upsertion("ann", sha256),
                upsertion("bob", ScramMechanism::Sha512),
                upsertion("dan", sha256),
                upsertion("eve", sha256).with_iterations(100_000),
                upsertion("fay", sha256).with_salted_password(bytes::Bytes::from_static(b"short")),
            ]);
        let plan = plan(&r, &credentials);
        let changed: Vec<&str> = plan.changes.iter().map(|(u, _, _)| u.as_str()).collect();
        assert_eq!(
            changed,
            ["dan"],
            "ann's deletion and upsertion of one credential refuse her"
        );
        assert_eq!(
            refused(&plan),
            vec![
                // The first deletion of a missing credential decides; the
                // second is not looked at.
                ("bob", ResponseError::ResourceNotFound),
                ("", ResponseError::UnacceptableCredential),
                ("cat", ResponseError::UnsupportedSaslMechanism),
                ("eve", ResponseError::UnacceptableCredential),
                ("fay", ResponseError::UnacceptableCredential),
                // Duplicates after the invalid changes, as Kafka lists them.
                ("ann", ResponseError::DuplicateResource),
            ]
        );
    }

    #[test]
    fn one_request_sets_both_mechanisms_of_a_user() {
        let credentials = credentials();
        let r = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
            upsertion("ivy", ScramMechanism::Sha256),
            upsertion("ivy", ScramMechanism::Sha512),
        ]);
        let results: Vec<(String, i16)> = alter_blocking(&credentials, &r)
            .into_iter()
            .map(|u| (u.user.to_string(), u.error_code))
            .collect();
        assert_eq!(results, vec![("ivy".to_owned(), 0)]);
        assert!(credentials.get("ivy", ScramMechanism::Sha256).is_some());
        assert!(credentials.get("ivy", ScramMechanism::Sha512).is_some());
    }

    #[test]
    fn results_list_deletions_then_upsertions_then_refusals() {
        let credentials = credentials();
        let sha512 = ScramMechanism::Sha512;
        credentials
            .upsert("gil", check_upsertion(&upsertion("gil", sha512)).unwrap())
            .unwrap();
        let r = AlterUserScramCredentialsRequest::default()
            .with_upsertions(vec![upsertion("hugo", sha512), upsertion("hugo", sha512)])
            .with_deletions(vec![deletion("gil", sha512.code())]);
        let results: Vec<(String, i16)> = alter_blocking(&credentials, &r)
            .into_iter()
            .map(|u| (u.user.to_string(), u.error_code))
            .collect();
        let duplicate = ResponseError::DuplicateResource.code();
        assert_eq!(results, vec![("gil".to_owned(), 0), ("hugo".to_owned(), duplicate)]);
        assert!(credentials.get("gil", sha512).is_none());
        assert!(credentials.get("hugo", sha512).is_none());
    }
}

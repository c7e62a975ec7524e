//! The rules of `[[quota]]` entries (V022 to V024, V139): whom a quota is
//! for, said once and one way, and a quota that sets a rate.

use crate::check::{Ctx, quota_entity};
use crate::raw::{Origin, Raw, RawTable};
use crate::rules;

pub(crate) fn run(ctx: &mut Ctx<'_>, raw: &Raw) {
    let mut seen: Vec<(veltrix_core::quotas::QuotaEntity, &RawTable)> = Vec::new();
    for q in &raw.quotas {
        let at = q.header.clone().map(Origin::File);
        if let Some(part) = both_ways(q) {
            ctx.emit(
                &rules::QUOTA_ENTITY_BOTH_WAYS,
                q.set_at(&format!("{part}_default")).or(at).as_ref(),
                format!("the quota names `{part}` and also sets `{part}_default`"),
            )
            .label("a named entity, or the default: not both")
            .related(q.set_at(part), "named here")
            .help(format!(
                "keep `{part} = ...` for one {part}, or `{part}_default = true` for every other one"
            ))
            .note("the two are different quotas in Kafka's order of precedence; declare each in its own `[[quota]]`");
            continue;
        }
        let Some(entity) = quota_entity(q) else {
            ctx.emit(&rules::QUOTA_WITHOUT_ENTITY, at.as_ref(), "the quota is for nobody")
                .label("no `user`, `client_id`, `user_default` or `client_id_default`")
                .help("add `client_id = \"...\"` (or `user = \"...\"`, or a `_default = true`)")
                .note(
                    "a quota applies to a user, a client id, or a user's client id; without one it could never apply",
                );
            continue;
        };
        let rates = ["producer_byte_rate", "consumer_byte_rate"];
        if !rates.iter().any(|k| q.declares(k)) {
            ctx.emit(
                &rules::QUOTA_WITHOUT_RATE,
                at.as_ref(),
                format!("the quota for {entity} sets no rate"),
            )
            .label("neither `producer_byte_rate` nor `consumer_byte_rate`")
            .help(
                "add `producer_byte_rate = ...` or `consumer_byte_rate = ...` in bytes per second, or remove the entry",
            )
            .note("a quota without a rate limits nothing; a less specific quota still applies to these clients");
        }
        if let Some((_, first)) = seen.iter().find(|(e, _)| *e == entity) {
            ctx.emit(
                &rules::DUPLICATE_QUOTA,
                at.as_ref(),
                format!("a quota for {entity} is declared twice"),
            )
            .label("declared again here")
            .related(first.header.clone().map(Origin::File), "first declared here")
            .help("merge the two entries into one")
            .note("two entries for one entity would leave it undecided which rates apply");
            continue;
        }
        seen.push((entity, q));
    }
}

/// The part (`user` or `client_id`) named and also set as the default.
fn both_ways(q: &RawTable) -> Option<&'static str> {
    ["user", "client_id"]
        .into_iter()
        .find(|p| q.str(p).is_some() && q.bool(&format!("{p}_default")) == Some(true))
}

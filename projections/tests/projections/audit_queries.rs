//! The auditors' queries in `projections/AUDIT_QUERIES.md`, run as the document writes them
//! and connected as it tells an auditor to, against a scripted history of two practices whose
//! answers are known: each query gives its documented answer for either tenant, and nothing of
//! the other's.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use casebook_adapters::event_store::EventStore;
use casebook_application::ports::Committed;
use casebook_domain::actor::{Actor, Role};
use casebook_domain::decision::{ConsultantDecision, DecisionCommand, Outcome};
use casebook_domain::diagnosis::{
    Diagnosis, DiagnosisCommand, DiagnosisSnapshot, EmbeddingModel, PrecedentSource, Provenance,
    RetrievedJudgment,
};
use casebook_domain::ids::{DecisionId, DiagnosisId, JudgmentId, QueryId, SessionId, TenantId};
use casebook_domain::judgment::{DecisionSnapshot, Judgment, JudgmentCommand, JudgmentContent};
use casebook_domain::metadata::{EventMetadata, Source};
use casebook_domain::policy::{ModelTier, PlanTier};
use casebook_domain::ports::StopReason;
use casebook_domain::session::{SessionCommand, TenantSession};
use casebook_domain::tenant::{Invitee, Tenant, TenantCommand};
use casebook_domain::upcast::upcasters;
use casebook_domain::values::Confidence;
use chrono::{DateTime, FixedOffset};
use cqrs_es::Aggregate;
use sqlx::{Column, PgPool, Row as _};
use uuid::Uuid;

use crate::support::{Driver, Stack};

const DOCUMENT: &str = include_str!("../../AUDIT_QUERIES.md");

/// The block an auditor opens a session with; its line [`QUERIES`] stands for the queries.
const CONNECT: &str = "connect";
const QUERIES: &str = "-- … queries …";

/// The founder's address [`Driver::sign_up`] signs every practice up with.
const FOUNDER: &str = "founder@practice.test";
const TEMPLATE: (&str, &str) = ("diagnose/v3", "sha256:3f2a");
const MODELS: [(&str, ModelTier, &str); 3] = [
    ("anthropic.claude-haiku", ModelTier::Triage, "triage"),
    ("anthropic.claude-sonnet", ModelTier::Standard, "standard"),
    ("meta.llama3-70b", ModelTier::OpenWeights, "open_weights"),
];

/// How one scripted diagnosis ends; a consultant by their index in
/// [`Practice::consultants`].
#[derive(Clone, Copy)]
enum End {
    AutoApproved,
    Approved(usize),
    Amended(usize, Option<&'static str>),
    Rejected(usize, &'static str),
    /// Proposed below the threshold, not reviewed yet.
    Pending,
    /// The worker gave up before a proposal.
    Failed,
}

const NOTICE: &str = "missed the notice period";
const JURISDICTION: &str = "wrong jurisdiction";

/// One diagnosis of the script: the phase it falls in (0 before the audited period, 1 in it,
/// 2 after it), its model (of [`MODELS`]) and confidence, the diagnoses whose captured
/// judgments are its precedents, and how it ends.
struct Plan {
    phase: usize,
    model: usize,
    confidence: f64,
    precedents: &'static [usize],
    end: End,
}

/// Every practice's diagnoses: phase, model, confidence, precedents, end. Auto-approvals are
/// at or above both practices' thresholds (0.9 and 0.8), the pending one below both.
static PLANS: [Plan; 11] = [
    plan(0, 1, 0.95, &[], End::AutoApproved),
    plan(0, 0, 0.6, &[], End::Approved(0)),
    plan(1, 1, 0.92, &[1], End::AutoApproved),
    plan(1, 2, 0.7, &[1], End::Amended(0, Some(NOTICE))),
    plan(1, 1, 0.5, &[], End::Rejected(1, JURISDICTION)),
    plan(1, 0, 0.97, &[3], End::AutoApproved),
    plan(1, 1, 0.75, &[1, 3], End::Pending),
    plan(1, 1, 0.0, &[], End::Failed),
    plan(1, 1, 0.6, &[], End::Amended(0, None)),
    plan(2, 1, 0.99, &[3], End::AutoApproved),
    plan(2, 0, 0.65, &[], End::Approved(1)),
];

const fn plan(
    phase: usize,
    model: usize,
    confidence: f64,
    precedents: &'static [usize],
    end: End,
) -> Plan {
    Plan {
        phase,
        model,
        confidence,
        precedents,
        end,
    }
}

#[tokio::test]
async fn every_auditors_query_in_the_document_gives_its_documented_answer_for_each_tenant_alone() {
    let stack = Stack::new().await;
    let mut seeder = Seeder {
        pool: stack.app.clone(),
        requests: 0,
    };
    let mut driver = Driver::new(stack.app.clone(), 91);
    let mut a = seeder.practice(&mut driver, "a", 0.9).await;
    let mut b = seeder.practice(&mut driver, "b", 0.8).await;
    // A third practice's random workload: the same models and kinds of rows, in every phase.
    driver.onboard(1).await;

    let mut bounds = Vec::new();
    for phase in 0..3 {
        driver.run(40).await;
        for plan in PLANS.iter().filter(|plan| plan.phase == phase) {
            seeder.diagnose(&mut a, plan).await;
            seeder.diagnose(&mut b, plan).await;
        }
        if phase < 2 {
            // Every event of the phase committed before this instant, every later one's
            // transaction starts after it.
            let now: String = sqlx::query_scalar("SELECT clock_timestamp()::text")
                .fetch_one(&stack.owner)
                .await
                .unwrap();
            bounds.push(now);
        }
    }
    stack.drain_all(50).await;

    let mut auditor = Auditor::new(stack.app.clone(), DOCUMENT);
    let period = [("since", bounds[0].clone()), ("until", bounds[1].clone())];
    for (practice, other) in [(&a, &b), (&b, &a)] {
        let ask = Ask {
            tenant: practice.tenant,
            other: other.tenant,
        };
        auto_approvals(&mut auditor, ask, practice, &period).await;
        consultant_decisions(&mut auditor, ask, practice).await;
        model_proposals(&mut auditor, ask, practice).await;
        access_grants(&mut auditor, ask, practice).await;
        request_chains(&mut auditor, ask, practice).await;
        precedent_uses(&mut auditor, ask, practice).await;
        model_cost(&mut auditor, ask, practice, &stack.owner).await;
        operator_actions(&mut auditor, ask, practice).await;
    }
    auditor.asked_every_query();
}

async fn auto_approvals(auditor: &mut Auditor, ask: Ask, p: &Practice, period: &[(&str, String)]) {
    let rows = auditor.answer("auto-approvals", ask, period).await;
    assert_ordered_by_time(&rows, "recorded_at");
    let mut got: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.int("global_position"),
                r.uuid("diagnosis_id"),
                r.uuid("decision_id"),
                r.float("confidence"),
                r.float("threshold"),
                r.text("model_id").to_owned(),
                r.text("prompt_template_id").to_owned(),
                r.text("correlation_id").to_owned(),
            )
        })
        .collect();
    got.sort_by_key(|row| row.0);
    let expected: Vec<_> = p
        .diagnoses
        .iter()
        .filter(|d| d.plan.phase == 1)
        .filter_map(|d| {
            let decision = d.decision.as_ref()?;
            let proposal = d.proposal.as_ref()?;
            (decision.outcome == "auto_approved").then(|| {
                (
                    decision.position,
                    *d.diagnosis.as_uuid(),
                    *DecisionId::for_diagnosis(d.diagnosis).as_uuid(),
                    d.plan.confidence,
                    p.threshold,
                    proposal.model.to_owned(),
                    TEMPLATE.0.to_owned(),
                    d.request.clone(),
                )
            })
        })
        .collect();
    assert_eq!(
        expected.len(),
        2,
        "the script auto-approves twice in the period"
    );
    assert_eq!(got, expected, "tenant {}", ask.tenant);
}

async fn consultant_decisions(auditor: &mut Auditor, ask: Ask, p: &Practice) {
    for consultant in &p.consultants {
        let subject = consultant.user_id.to_string();
        let rows = auditor
            .answer(
                "consultant-decisions",
                ask,
                &[("consultant", subject.clone())],
            )
            .await;
        assert_ordered_by_time(&rows, "recorded_at");
        let mut got: Vec<_> = rows
            .iter()
            .map(|r| {
                (
                    r.int("global_position"),
                    r.uuid("diagnosis_id"),
                    r.uuid("decision_id"),
                    r.text("outcome").to_owned(),
                    r.get("reason").map(str::to_owned),
                    r.text("request_id").to_owned(),
                )
            })
            .collect();
        got.sort_by_key(|row| row.0);
        let expected: Vec<_> = p
            .diagnoses
            .iter()
            .filter_map(|d| {
                let decision = d.decision.as_ref()?;
                (decision.consultant.as_ref() == Some(&subject)).then(|| {
                    (
                        decision.position,
                        *d.diagnosis.as_uuid(),
                        *DecisionId::for_diagnosis(d.diagnosis).as_uuid(),
                        decision.outcome.to_owned(),
                        decision.reason.clone(),
                        decision.request.clone(),
                    )
                })
            })
            .collect();
        assert!(
            expected.len() >= 2,
            "each consultant decides more than once"
        );
        assert_eq!(got, expected, "{subject} of tenant {}", ask.tenant);
    }
}

async fn model_proposals(auditor: &mut Auditor, ask: Ask, p: &Practice) {
    for (model, _, tier) in MODELS {
        let rows = auditor
            .answer("model-proposals", ask, &[("model", model.to_owned())])
            .await;
        assert_ordered_by_time(&rows, "recorded_at");
        let mut got: Vec<_> = rows
            .iter()
            .map(|r| {
                (
                    r.int("global_position"),
                    r.uuid("diagnosis_id"),
                    r.text("model_tier").to_owned(),
                    (
                        r.text("prompt_template_id").to_owned(),
                        r.text("prompt_template_hash").to_owned(),
                    ),
                    serde_json::from_str::<Vec<Uuid>>(r.text("retrieved_judgment_ids")).unwrap(),
                    r.float("confidence"),
                    (
                        r.int("input_tokens"),
                        r.int("output_tokens"),
                        r.int("cost_usd_micros"),
                    ),
                    r.text("correlation_id").to_owned(),
                )
            })
            .collect();
        got.sort_by_key(|row| row.0);
        let expected: Vec<_> = p
            .diagnoses
            .iter()
            .filter_map(|d| {
                let proposal = d.proposal.as_ref().filter(|x| x.model == model)?;
                Some((
                    proposal.position,
                    *d.diagnosis.as_uuid(),
                    tier.to_owned(),
                    (TEMPLATE.0.to_owned(), TEMPLATE.1.to_owned()),
                    proposal.retrieved.iter().map(|j| *j.as_uuid()).collect(),
                    d.plan.confidence,
                    (
                        i64::from(proposal.input_tokens),
                        i64::from(proposal.output_tokens),
                        proposal.cost_usd_micros as i64,
                    ),
                    d.request.clone(),
                ))
            })
            .collect();
        assert!(!expected.is_empty(), "the script proposes with {model}");
        assert_eq!(got, expected, "{model} in tenant {}", ask.tenant);
    }
}

async fn access_grants(auditor: &mut Auditor, ask: Ask, p: &Practice) {
    let rows = auditor.answer("access-grants", ask, &[]).await;
    let got: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            ["actor_id", "actor_role", "action", "member", "access"].map(|c| r.text(c).to_owned())
        })
        .collect();
    assert_eq!(got, p.access, "tenant {}", ask.tenant);
}

async fn request_chains(auditor: &mut Auditor, ask: Ask, p: &Practice) {
    let chains = p.diagnoses.iter().flat_map(|d| {
        let decided = d.decision.as_ref().filter(|x| x.consultant.is_some());
        std::iter::once((&d.request, &d.chain)).chain(decided.map(|x| (&x.request, &x.chain)))
    });
    let mut asked = 0;
    for (request, chain) in chains {
        let rows = auditor
            .answer("request-chain", ask, &[("request_id", request.clone())])
            .await;
        let seqs: Vec<i64> = rows.iter().map(|r| r.int("seq")).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
        let got: Vec<Link> = rows
            .iter()
            .map(|r| Link {
                action: r.text("action").to_owned(),
                actor_id: r.text("actor_id").to_owned(),
                actor_role: r.text("actor_role").to_owned(),
                source: r.text("source").to_owned(),
                outcome: r.get("outcome").map(str::to_owned),
                causation_id: r.text("causation_id").to_owned(),
            })
            .collect();
        assert_eq!(&got, chain, "request {request} of tenant {}", ask.tenant);
        asked += 1;
    }
    assert_eq!(
        asked,
        PLANS.len() + 5,
        "every query and every consultant's decision"
    );
}

async fn precedent_uses(auditor: &mut Auditor, ask: Ask, p: &Practice) {
    let judgments = p
        .diagnoses
        .iter()
        .filter_map(|d| d.decision.as_ref()?.judgment);
    let mut used = 0;
    for judgment in judgments {
        let rows = auditor
            .answer(
                "precedent-uses",
                ask,
                &[("judgment_id", judgment.to_string())],
            )
            .await;
        assert_ordered_by_time(&rows, "recorded_at");
        let mut got: Vec<_> = rows
            .iter()
            .map(|r| {
                (
                    r.uuid("diagnosis_id"),
                    r.text("model_id").to_owned(),
                    r.float("confidence"),
                )
            })
            .collect();
        got.sort_by_key(|row| row.0);
        let mut expected: Vec<_> = p
            .diagnoses
            .iter()
            .filter_map(|d| {
                let proposal = d.proposal.as_ref()?;
                proposal.retrieved.contains(&judgment).then(|| {
                    (
                        *d.diagnosis.as_uuid(),
                        proposal.model.to_owned(),
                        d.plan.confidence,
                    )
                })
            })
            .collect();
        expected.sort_by_key(|row| row.0);
        used += expected.len();
        assert_eq!(
            got, expected,
            "judgment {judgment} of tenant {}",
            ask.tenant
        );
    }
    assert_eq!(used, 6, "the script's precedents");
}

async fn model_cost(auditor: &mut Auditor, ask: Ask, p: &Practice, owner: &PgPool) {
    let rows = auditor.answer("model-cost", ask, &[]).await;
    let got: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                (r.text("month").to_owned(), r.text("model_id").to_owned()),
                (
                    r.int("proposals"),
                    r.int("input_tokens"),
                    r.int("output_tokens"),
                    (r.float("cost_usd") * 1e6).round() as i64,
                ),
            )
        })
        .collect();
    let mut expected: BTreeMap<(String, String), (i64, i64, i64, i64)> = BTreeMap::new();
    for d in &p.diagnoses {
        let Some(proposal) = &d.proposal else {
            continue;
        };
        // The month the log put the proposal in, in the server's time zone as the query's.
        let month: String = sqlx::query_scalar(
            "SELECT date_trunc('month', recorded_at)::text FROM events WHERE global_position = $1",
        )
        .bind(proposal.position)
        .fetch_one(owner)
        .await
        .unwrap();
        let sums = expected
            .entry((month, proposal.model.to_owned()))
            .or_default();
        sums.0 += 1;
        sums.1 += i64::from(proposal.input_tokens);
        sums.2 += i64::from(proposal.output_tokens);
        sums.3 += proposal.cost_usd_micros as i64;
    }
    assert_eq!(
        got,
        expected.into_iter().collect::<Vec<_>>(),
        "tenant {}",
        ask.tenant
    );
}

async fn operator_actions(auditor: &mut Auditor, ask: Ask, p: &Practice) {
    let rows = auditor.answer("operator-actions", ask, &[]).await;
    let got: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.text("actor_id").to_owned(),
                r.text("actor_role").to_owned(),
                r.text("action").to_owned(),
                r.get("reason").map(str::to_owned),
            )
        })
        .collect();
    assert_eq!(got, p.operator, "tenant {}", ask.tenant);
}

/// `column` (a time) never decreases down the rows.
fn assert_ordered_by_time(rows: &[Row], column: &str) {
    let times: Vec<DateTime<FixedOffset>> = rows.iter().map(|r| r.time(column)).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
}

/// Who the queries are asked for, and the other practice, whose auditor must see none of it.
#[derive(Clone, Copy)]
struct Ask {
    tenant: TenantId,
    other: TenantId,
}

/// The document's named SQL blocks, run on the application's login (which holds no role's
/// rights of its own) inside the document's `connect` block.
struct Auditor {
    pool: PgPool,
    /// The `connect` block before and after its queries line.
    connect: (String, String),
    blocks: BTreeMap<String, String>,
    asked: BTreeSet<String>,
}

impl Auditor {
    fn new(pool: PgPool, document: &str) -> Self {
        let mut blocks = BTreeMap::new();
        for (name, sql) in sql_blocks(document) {
            assert!(
                blocks.insert(name.clone(), sql).is_none(),
                "two blocks named {name}"
            );
        }
        let connect = blocks
            .remove(CONNECT)
            .expect("the document's connect block");
        let lines: Vec<&str> = connect.lines().collect();
        let at = lines
            .iter()
            .position(|line| line.trim() == QUERIES)
            .expect("the connect block's queries line");
        Self {
            pool,
            connect: (lines[..at].join("\n"), lines[at + 1..].join("\n")),
            blocks,
            asked: BTreeSet::new(),
        }
    }

    /// `block`'s rows for `ask.tenant`: the same to an auditor of that tenant as to one who
    /// sees both practices (the query's own tenant filter), none to an auditor of the other
    /// practice alone (row-level security, whatever the query says).
    async fn answer(&mut self, block: &str, ask: Ask, values: &[(&str, String)]) -> Vec<Row> {
        let mut values: BTreeMap<&str, String> = values.iter().cloned().collect();
        values.insert("tenant", ask.tenant.to_string());
        let rows = self.rows(&ask.tenant.to_string(), block, &values).await;
        let both = format!("{},{}", ask.tenant, ask.other);
        assert_eq!(self.rows(&both, block, &values).await, rows, "{block}");
        let theirs = self.rows(&ask.other.to_string(), block, &values).await;
        assert_eq!(
            theirs,
            vec![],
            "{block}: the other tenant's auditor sees none of it"
        );
        self.asked.insert(block.to_owned());
        rows
    }

    /// `block`, its variables set to `values`, in a session scoped to `scope` (`app.tenant_id`).
    async fn rows(&self, scope: &str, block: &str, values: &BTreeMap<&str, String>) -> Vec<Row> {
        let sql = self
            .blocks
            .get(block)
            .unwrap_or_else(|| panic!("AUDIT_QUERIES.md has no block named {block}"));
        let (query, used) = interpolate(sql, values);
        let given: BTreeSet<String> = values.keys().map(|name| name.to_string()).collect();
        assert_eq!(
            used, given,
            "{block} takes exactly the variables set for it"
        );
        let scope = BTreeMap::from([("tenant", scope.to_owned())]);
        let (before, _) = interpolate(&self.connect.0, &scope);
        let (after, _) = interpolate(&self.connect.1, &scope);
        // One simple-protocol script, as psql sends it: every value comes back as text.
        let script = format!("{before}\n{query}\n{after}");
        let mut conn = self.pool.acquire().await.unwrap();
        let rows = sqlx::raw_sql(&script)
            .fetch_all(&mut *conn)
            .await
            .unwrap_or_else(|err| panic!("{block}: {err}\n{script}"));
        rows.iter()
            .map(|row| {
                Row(row
                    .columns()
                    .iter()
                    .map(|column| {
                        let value: Option<String> =
                            row.try_get_unchecked(column.ordinal()).unwrap();
                        (column.name().to_owned(), value)
                    })
                    .collect())
            })
            .collect()
    }

    /// Fails on any block of the document no expected answer asked.
    fn asked_every_query(&self) {
        let unasked: Vec<&String> = self
            .blocks
            .keys()
            .filter(|name| !self.asked.contains(*name))
            .collect();
        assert!(
            unasked.is_empty(),
            "AUDIT_QUERIES.md has queries without an expected answer here: {unasked:?}"
        );
    }
}

/// Every SQL block of `document`, by the name after its language on the opening fence.
fn sql_blocks(document: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut lines = document.lines();
    while let Some(line) = lines.next() {
        let Some(info) = line.trim_start().strip_prefix("```") else {
            continue;
        };
        let body: Vec<&str> = lines
            .by_ref()
            .take_while(|line| !line.trim_start().starts_with("```"))
            .collect();
        let mut words = info.split_whitespace();
        let language = words.next().unwrap_or_default().to_ascii_lowercase();
        if !["sql", "psql", "pgsql", "postgres", "postgresql"].contains(&language.as_str()) {
            continue;
        }
        let body = body.join("\n");
        let name = words
            .next()
            .unwrap_or_else(|| panic!("an SQL block without a name:\n{body}"));
        blocks.push((name.to_owned(), body));
    }
    blocks
}

/// `sql` with each psql variable `:'name'` replaced by its value as a quoted literal, as psql
/// does: not inside literals, quoted identifiers or comments, and not in a cast (`::`). Also
/// the names it put in. The document quotes every variable, so a bare `:name` (which psql
/// puts in unquoted) fails here.
fn interpolate(sql: &str, values: &BTreeMap<&str, String>) -> (String, BTreeSet<String>) {
    let mut out = String::with_capacity(sql.len());
    let mut used = BTreeSet::new();
    let mut rest = sql;
    while let Some(first) = rest.chars().next() {
        let skipped = if rest.starts_with("--") {
            rest.find('\n').unwrap_or(rest.len())
        } else if rest.starts_with("/*") {
            rest.find("*/").expect("a closed comment") + 2
        } else if first == '\'' || first == '"' {
            // A doubled quote closes and reopens, which copies the same.
            rest[1..].find(first).expect("a closed quote") + 2
        } else if rest.starts_with("::") {
            2
        } else if let Some(variable) = rest.strip_prefix(":'") {
            let end = variable.find('\'').expect("a closed variable");
            let name = &variable[..end];
            let value = values
                .get(name)
                .unwrap_or_else(|| panic!("no value for :'{name}'"));
            assert!(!value.contains('\\'), "psql would escape {value}");
            out.push('\'');
            out.push_str(&value.replace('\'', "''"));
            out.push('\'');
            used.insert(name.to_owned());
            rest = &variable[end + 1..];
            continue;
        } else if first == ':'
            && rest[1..].starts_with(|c: char| c.is_ascii_alphabetic() || c == '_' || c == '"')
        {
            let line = rest.lines().next().unwrap_or_default();
            panic!("an unquoted psql variable (write :'name'): {line}");
        } else {
            first.len_utf8()
        };
        out.push_str(&rest[..skipped]);
        rest = &rest[skipped..];
    }
    (out, used)
}

#[test]
fn variables_are_put_in_as_psql_does_and_nowhere_else() {
    let values = BTreeMap::from([("tenant", "it's".to_owned())]);
    let (sql, used) = interpolate(
        "SELECT ':''tenant''', \":'tenant'\", x::text -- :'tenant'\n WHERE t = :'tenant'",
        &values,
    );
    assert_eq!(
        sql,
        "SELECT ':''tenant''', \":'tenant'\", x::text -- :'tenant'\n WHERE t = 'it''s'"
    );
    assert_eq!(used, BTreeSet::from(["tenant".to_owned()]));
}

/// A row as psql shows it: each column's text, or NULL.
#[derive(Debug, PartialEq)]
struct Row(Vec<(String, Option<String>)>);

impl Row {
    fn get(&self, column: &str) -> Option<&str> {
        let (_, value) = self
            .0
            .iter()
            .find(|(name, _)| name == column)
            .unwrap_or_else(|| panic!("no column {column} in {self:?}"));
        value.as_deref()
    }

    fn text(&self, column: &str) -> &str {
        self.get(column)
            .unwrap_or_else(|| panic!("{column} is NULL in {self:?}"))
    }

    fn int(&self, column: &str) -> i64 {
        self.text(column).parse().unwrap()
    }

    fn float(&self, column: &str) -> f64 {
        self.text(column).parse().unwrap()
    }

    fn uuid(&self, column: &str) -> Uuid {
        self.text(column).parse().unwrap()
    }

    fn time(&self, column: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_str(self.text(column), "%Y-%m-%d %H:%M:%S%.f%#z").unwrap()
    }
}

/// A row of `request-chain`.
#[derive(Debug, PartialEq)]
struct Link {
    action: String,
    actor_id: String,
    actor_role: String,
    source: String,
    outcome: Option<String>,
    causation_id: String,
}

impl Link {
    /// A row of a person's request: through the API, caused by the request itself.
    fn api(action: &str, actor: &Actor, role: &str, outcome: Option<&str>, request: &str) -> Self {
        Self {
            action: action.to_owned(),
            actor_id: actor.user_id.to_string(),
            actor_role: role.to_owned(),
            source: "api".to_owned(),
            outcome: outcome.map(str::to_owned),
            causation_id: request.to_owned(),
        }
    }

    /// A row of the system's (the worker, a reaction), caused by the event `cause`.
    fn system(action: &str, source: &str, outcome: Option<&str>, cause: &str) -> Self {
        Self {
            action: action.to_owned(),
            actor_id: "casebook:system".to_owned(),
            actor_role: "system".to_owned(),
            source: source.to_owned(),
            outcome: outcome.map(str::to_owned),
            causation_id: cause.to_owned(),
        }
    }
}

/// A practice of the script and what its auditor should be told.
struct Practice {
    tenant: TenantId,
    threshold: f64,
    admin: Actor,
    customer: Actor,
    consultants: [Actor; 2],
    session: SessionId,
    diagnoses: Vec<Seeded>,
    /// `access-grants`: actor, role, action, member, access.
    access: Vec<[String; 5]>,
    /// `operator-actions`: actor, role, action, reason.
    operator: Vec<(String, String, String, Option<String>)>,
}

/// A diagnosis as the script made it.
struct Seeded {
    plan: &'static Plan,
    diagnosis: DiagnosisId,
    /// The customer's request: its chain's correlation id.
    request: String,
    chain: Vec<Link>,
    proposal: Option<Proposed>,
    decision: Option<Decided>,
}

struct Proposed {
    model: &'static str,
    retrieved: Vec<JudgmentId>,
    input_tokens: u32,
    output_tokens: u32,
    cost_usd_micros: u64,
    position: i64,
}

struct Decided {
    outcome: &'static str,
    /// The consultant's subject; `None` for an auto-approval.
    consultant: Option<String>,
    reason: Option<String>,
    /// The consultant's request (for an auto-approval, the customer's).
    request: String,
    /// The consultant's request's chain.
    chain: Vec<Link>,
    judgment: Option<JudgmentId>,
    position: i64,
}

/// Commands through the real event store, each with the metadata the application gives it:
/// a request of its own for a person's, the causing event's chain for the worker's and the
/// reactions'.
struct Seeder {
    pool: PgPool,
    requests: u64,
}

impl Seeder {
    fn request(&mut self, actor: &Actor, source: Source) -> EventMetadata {
        self.requests += 1;
        EventMetadata::new(actor, format!("audit-req-{}", self.requests), source)
    }

    /// Runs `command`, which the script expects accepted; its one event.
    async fn run<A>(
        &self,
        id: impl ToString,
        command: A::Command,
        meta: &EventMetadata,
    ) -> Committed
    where
        A: Aggregate<Services = ()> + casebook_domain::personal::DataSubject + Send + Sync,
        A::Error: Send + Debug,
    {
        let mut committed = EventStore::<A>::new(self.pool.clone(), upcasters())
            .execute(&id.to_string(), command, &(), meta.to_map())
            .await
            .unwrap_or_else(|err| panic!("a scripted {} command refused: {err:?}", A::TYPE));
        assert_eq!(committed.len(), 1);
        committed.pop().unwrap()
    }

    /// A practice signed up, with its gateway key, people, operator actions, threshold and
    /// a customer's session.
    async fn practice(&mut self, driver: &mut Driver, label: &str, threshold: f64) -> Practice {
        let tenant = driver.sign_up().await;
        driver.record_usage_key(tenant).await;
        let person = |role| Actor {
            user_id: parse(Uuid::new_v4().to_string()),
            tenant_id: tenant,
            role,
        };
        let mut p = Practice {
            tenant,
            threshold,
            admin: person(Role::Admin),
            customer: person(Role::Customer),
            consultants: [person(Role::Consultant), person(Role::Consultant)],
            session: SessionId::new(),
            diagnoses: Vec::new(),
            access: Vec::new(),
            operator: Vec::new(),
        };
        let system = Actor::system(tenant);
        let access = |actor: &Actor, role: &str, action: &str, member: &str, access: &str| {
            [
                actor.user_id.to_string().as_str(),
                role,
                action,
                member,
                access,
            ]
            .map(str::to_owned)
        };
        p.access.push(access(
            &system,
            "system",
            "TenantSignedUp",
            FOUNDER,
            "admin",
        ));
        p.operator.push((
            system.user_id.to_string(),
            "system".into(),
            "UsageKeyAssigned".into(),
            None,
        ));

        let admin = p.admin.clone();
        self.provision(&mut p, FOUNDER, &admin).await;
        let consultants = p.consultants.clone();
        for (name, consultant) in ["robin", "sam"].into_iter().zip(&consultants) {
            let email = format!("{name}@{label}.test");
            self.invite(&mut p, &email, Role::Consultant).await;
            self.provision(&mut p, &email, consultant).await;
        }
        // Someone whose access changes: consultant, then auditor, disabled, enabled again.
        let kim = format!("kim@{label}.test");
        self.invite(&mut p, &kim, Role::Consultant).await;
        let changes = [
            (
                TenantCommand::ChangeUserRole {
                    actor: admin.clone(),
                    email: parse(kim.clone()),
                    role: Role::Auditor,
                },
                "UserRoleChanged",
                "auditor",
            ),
            (
                TenantCommand::DisableUser {
                    actor: admin.clone(),
                    email: parse(kim.clone()),
                },
                "UserDisabled",
                "disabled",
            ),
            (
                TenantCommand::EnableUser {
                    actor: admin.clone(),
                    email: parse(kim.clone()),
                },
                "UserEnabled",
                "enabled",
            ),
        ];
        for (command, action, outcome) in changes {
            let meta = self.request(&admin, Source::Api);
            self.run::<Tenant>(tenant, command, &meta).await;
            p.access
                .push(access(&admin, "admin", action, &kim, outcome));
        }
        self.provision(&mut p, &kim, &person(Role::Auditor)).await;

        let operator = Actor {
            user_id: parse("operator:ops".to_owned()),
            tenant_id: tenant,
            role: Role::Operator,
        };
        let plan = PlanTier::Professional;
        let meta = self.request(&operator, Source::Operator);
        let changed = self
            .run::<Tenant>(
                tenant,
                TenantCommand::ChangePlan {
                    actor: operator.clone(),
                    plan,
                },
                &meta,
            )
            .await;
        let keyed = EventMetadata::caused_by(&system, &meta, event_id(&changed), Source::Reaction);
        let record_key = TenantCommand::RecordUsageKey {
            actor: system.clone(),
            api_key_id: format!("key-{tenant}"),
            plan,
        };
        self.run::<Tenant>(tenant, record_key, &keyed).await;
        let meta = self.request(&operator, Source::Operator);
        let suspend = TenantCommand::Suspend {
            actor: operator.clone(),
            reason: parse("billing overdue".to_owned()),
        };
        self.run::<Tenant>(tenant, suspend, &meta).await;
        let meta = self.request(&operator, Source::Operator);
        let reactivate = TenantCommand::Reactivate {
            actor: operator.clone(),
        };
        self.run::<Tenant>(tenant, reactivate, &meta).await;
        let op = |action: &str, reason: Option<&str>| {
            (
                operator.user_id.to_string(),
                "operator".to_owned(),
                action.to_owned(),
                reason.map(str::to_owned),
            )
        };
        p.operator.extend([
            op("PlanChanged", None),
            (
                system.user_id.to_string(),
                "system".into(),
                "UsageKeyAssigned".into(),
                None,
            ),
            op("TenantSuspended", Some("billing overdue")),
            op("TenantReactivated", None),
        ]);

        let meta = self.request(&admin, Source::Api);
        let threshold = TenantCommand::SetAutoResolveThreshold {
            actor: admin.clone(),
            threshold: Some(confidence(threshold)),
        };
        self.run::<Tenant>(tenant, threshold, &meta).await;
        let meta = self.request(&p.customer, Source::Api);
        let open = SessionCommand::Open {
            actor: p.customer.clone(),
            session_id: p.session,
            subject: parse("Lease review".to_owned()),
            attachments: vec![],
            uploads_issued_to_actor: Default::default(),
            tenant_active: true,
        };
        self.run::<TenantSession>(p.session, open, &meta).await;
        p
    }

    async fn invite(&mut self, p: &mut Practice, email: &str, role: Role) {
        let meta = self.request(&p.admin, Source::Api);
        let invite = TenantCommand::InviteUser {
            actor: p.admin.clone(),
            invitee: Invitee {
                email: parse(email.to_owned()),
                name: parse("A member".to_owned()),
            },
            role,
        };
        self.run::<Tenant>(p.tenant, invite, &meta).await;
        let role = serde_json::to_value(role).unwrap();
        let admin = p.admin.user_id.to_string();
        let row = [
            admin.as_str(),
            "admin",
            "UserInvited",
            email,
            role.as_str().unwrap(),
        ];
        p.access.push(row.map(str::to_owned));
    }

    /// The people reaction's record of `email`'s account, `person` its subject.
    async fn provision(&mut self, p: &mut Practice, email: &str, person: &Actor) {
        let system = Actor::system(p.tenant);
        let meta = self.request(&system, Source::Reaction);
        let provisioned = TenantCommand::RecordUserProvisioned {
            actor: system.clone(),
            email: parse(email.to_owned()),
            user_id: person.user_id.clone(),
        };
        self.run::<Tenant>(p.tenant, provisioned, &meta).await;
        let system = system.user_id.to_string();
        let row = [
            system.as_str(),
            "system",
            "UserProvisioned",
            email,
            "provisioned",
        ];
        p.access.push(row.map(str::to_owned));
    }

    /// A customer's query diagnosed as `plan` says, each step with the metadata the API, the
    /// worker and the reactions give it.
    async fn diagnose(&mut self, p: &mut Practice, plan: &'static Plan) {
        let (tenant, customer) = (p.tenant, p.customer.clone());
        let system = Actor::system(tenant);
        let query = QueryId::new();
        let diagnosis = DiagnosisId::for_query(query);
        let asked = self.request(&customer, Source::Api);
        let submit = SessionCommand::SubmitQuery {
            actor: customer.clone(),
            query_id: query,
            text: parse("Is clause 4 enforceable?".to_owned()),
            tenant_active: true,
        };
        self.run::<TenantSession>(p.session, submit, &asked).await;
        let request = DiagnosisCommand::Request {
            actor: customer.clone(),
            diagnosis_id: diagnosis,
            session_id: p.session,
            query_id: query,
            query: parse("Is clause 4 enforceable?".to_owned()),
            tenant_active: true,
        };
        let requested = self.run::<Diagnosis>(diagnosis, request, &asked).await;
        let req = asked.request_id.as_str();
        let mut chain = vec![
            Link::api("QuerySubmitted", &customer, "customer", None, req),
            Link::api("DiagnosisRequested", &customer, "customer", None, req),
        ];

        let work = EventMetadata::caused_by(&system, &asked, event_id(&requested), Source::Worker);
        let retrieved: Vec<JudgmentId> = plan
            .precedents
            .iter()
            .map(|&i| {
                p.diagnoses[i]
                    .decision
                    .as_ref()
                    .and_then(|d| d.judgment)
                    .expect("a judgment captured earlier")
            })
            .collect();
        let context = DiagnosisCommand::RecordContext {
            actor: system.clone(),
            judgments: retrieved
                .iter()
                .map(|&judgment_id| RetrievedJudgment {
                    judgment_id,
                    score: 0.8,
                })
                .collect(),
        };
        self.run::<Diagnosis>(diagnosis, context, &work).await;
        let cause = event_id(&requested);
        chain.push(Link::system("ContextRetrieved", "worker", None, &cause));

        let mut seeded = Seeded {
            plan,
            diagnosis,
            request: asked.request_id.clone(),
            chain,
            proposal: None,
            decision: None,
        };
        if let End::Failed = plan.end {
            let fail = DiagnosisCommand::Fail {
                actor: system.clone(),
                reason: parse("model timed out".to_owned()),
                retryable: false,
            };
            self.run::<Diagnosis>(diagnosis, fail, &work).await;
            let failed = Link::system("DiagnosisFailed", "worker", Some("final"), &cause);
            seeded.chain.push(failed);
            p.diagnoses.push(seeded);
            return;
        }

        let (model, tier, _) = MODELS[plan.model];
        // Distinct per diagnosis and per practice, so sums tell whose rows they add up.
        let n = (p.diagnoses.len() + self.requests as usize) as u32;
        let provenance = Provenance {
            model_id: model.to_owned(),
            model_tier: tier,
            prompt_template_id: TEMPLATE.0.to_owned(),
            prompt_template_hash: TEMPLATE.1.to_owned(),
            retrieved_judgment_ids: retrieved.clone(),
            input_tokens: 1_000 + 7 * n,
            output_tokens: 200 + 3 * n,
            cost_usd_micros: 5_000 + 131 * u64::from(n),
            stop_reason: Some(StopReason::EndTurn),
            embedding: Some(EmbeddingModel {
                model_id: "all-MiniLM-L6-v2".to_owned(),
                dimension: 384,
            }),
            precedents: Some(
                retrieved
                    .iter()
                    .map(|&judgment_id| PrecedentSource {
                        judgment_id,
                        score: 0.8,
                        source_position: 1,
                    })
                    .collect(),
            ),
            attachments: Some(vec![]),
        };
        let propose = DiagnosisCommand::Propose {
            actor: system.clone(),
            text: parse("The clause is enforceable with caveats.".to_owned()),
            findings: vec![],
            confidence: confidence(plan.confidence),
            provenance: provenance.clone(),
        };
        let proposed = self.run::<Diagnosis>(diagnosis, propose, &work).await;
        let proposal = Link::system("DiagnosisProposed", "worker", None, &cause);
        seeded.chain.push(proposal);
        seeded.proposal = Some(Proposed {
            model,
            retrieved,
            input_tokens: provenance.input_tokens,
            output_tokens: provenance.output_tokens,
            cost_usd_micros: provenance.cost_usd_micros,
            position: proposed.global_position,
        });

        let decision_id = DecisionId::for_diagnosis(diagnosis);
        let snapshot = DiagnosisSnapshot {
            diagnosis_id: diagnosis,
            tenant_id: tenant,
            proposed_confidence: Some(confidence(plan.confidence)),
            customer: None,
        };
        let (actor, meta, command, outcome, reason) = match plan.end {
            End::Pending | End::Failed => {
                p.diagnoses.push(seeded);
                return;
            }
            End::AutoApproved => {
                let meta =
                    EventMetadata::caused_by(&system, &work, event_id(&proposed), Source::Reaction);
                let command = DecisionCommand::AutoApprove {
                    actor: system.clone(),
                    diagnosis: snapshot,
                    threshold: Some(confidence(p.threshold)),
                    tenant_active: true,
                };
                (system.clone(), meta, command, Outcome::AutoApproved, None)
            }
            End::Approved(by) => {
                let actor = p.consultants[by].clone();
                let command = DecisionCommand::Approve {
                    actor: actor.clone(),
                    diagnosis: snapshot,
                };
                (
                    actor.clone(),
                    self.request(&actor, Source::Api),
                    command,
                    Outcome::Approved,
                    None,
                )
            }
            End::Amended(by, reason) => {
                let actor = p.consultants[by].clone();
                let command = DecisionCommand::Amend {
                    actor: actor.clone(),
                    diagnosis: snapshot,
                    amended_text: parse("Enforceable only after notice.".to_owned()),
                    reason: reason.map(|r| parse(r.to_owned())),
                };
                let meta = self.request(&actor, Source::Api);
                (actor, meta, command, Outcome::Amended, reason)
            }
            End::Rejected(by, reason) => {
                let actor = p.consultants[by].clone();
                let command = DecisionCommand::Reject {
                    actor: actor.clone(),
                    diagnosis: snapshot,
                    reason: parse(reason.to_owned()),
                };
                let meta = self.request(&actor, Source::Api);
                (actor, meta, command, Outcome::Rejected, Some(reason))
            }
        };
        let made = self
            .run::<ConsultantDecision>(decision_id, command, &meta)
            .await;
        let outcome_text = match outcome {
            Outcome::Approved => "approved",
            Outcome::Amended => "amended",
            Outcome::Rejected => "rejected",
            Outcome::AutoApproved => "auto_approved",
        };
        let by_consultant = actor.role == Role::Consultant;
        let mut chain = Vec::new();
        let decided = if by_consultant {
            let request = &meta.request_id;
            Link::api(
                "DecisionMade",
                &actor,
                "consultant",
                Some(outcome_text),
                request,
            )
        } else {
            let cause = event_id(&proposed);
            Link::system("DecisionMade", "reaction", Some(outcome_text), &cause)
        };
        chain.push(decided);

        let made_id = event_id(&made);
        let reaction = EventMetadata::caused_by(&system, &meta, made_id.clone(), Source::Reaction);
        let resolve = DiagnosisCommand::Resolve {
            actor: system.clone(),
            decision_id,
            outcome,
        };
        self.run::<Diagnosis>(diagnosis, resolve, &reaction).await;
        let resolved = Link::system(
            "DiagnosisResolved",
            "reaction",
            Some(outcome_text),
            &made_id,
        );
        chain.push(resolved);
        let judgment = if outcome.captures_judgment() {
            let judgment = JudgmentId::for_decision(decision_id);
            let capture = JudgmentCommand::CaptureFromDecision {
                actor: system.clone(),
                decision: DecisionSnapshot {
                    decision_id,
                    diagnosis_id: diagnosis,
                    tenant_id: tenant,
                    outcome,
                    customer: None,
                },
                content: JudgmentContent {
                    title: parse("Notice periods".to_owned()),
                    body: parse("Check the notice period first.".to_owned()),
                    tags: vec![parse("lease".to_owned())],
                },
            };
            self.run::<Judgment>(judgment, capture, &reaction).await;
            let captured = Link::system("JudgmentCaptured", "reaction", None, &made_id);
            chain.push(captured);
            Some(judgment)
        } else {
            None
        };
        // An auto-approval is part of the customer's request; a consultant's decision is a
        // request of its own.
        let chain = if by_consultant {
            chain
        } else {
            seeded.chain.extend(chain);
            Vec::new()
        };
        seeded.decision = Some(Decided {
            outcome: outcome_text,
            consultant: by_consultant.then(|| actor.user_id.to_string()),
            reason: reason.map(str::to_owned),
            request: meta.request_id.clone(),
            chain,
            judgment,
            position: made.global_position,
        });
        p.diagnoses.push(seeded);
    }
}

/// How a cause names an event.
fn event_id(event: &Committed) -> String {
    format!(
        "{}/{}/{}",
        event.aggregate_type, event.aggregate_id, event.sequence
    )
}

fn parse<T: TryFrom<String>>(text: String) -> T
where
    T::Error: Debug,
{
    T::try_from(text).expect("valid test value")
}

fn confidence(value: f64) -> Confidence {
    Confidence::new(value).expect("valid confidence")
}

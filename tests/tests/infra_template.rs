//! `infra/template.yaml` (the AWS SAM template): the wiring between its resources, checked
//! offline by parsing the template. `infra/validate.sh` lints it (cfn-lint) and checks its
//! security policies (checkov); these tests check what neither knows: that the functions are
//! this workspace's binaries, that queues outlast their consumers, that environments name only
//! the template's own resources, the schedules, that tiers and roles match the domain, and that
//! the distribution serves the web app as `casebook serve` does, beside the untouched API.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use casebook_domain::actor::Role;
use casebook_domain::policy::PlanTier;
use serde_yaml::{Mapping, Value};

/// The Lambda functions and the workspace binaries they run.
const FUNCTIONS: [&str; 5] = ["api", "authorizer", "worker", "scheduler", "projector"];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn template() -> &'static Value {
    static TEMPLATE: OnceLock<Value> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let path = repo_root().join("infra/template.yaml");
        let text = std::fs::read_to_string(&path).expect("read infra/template.yaml");
        serde_yaml::from_str(&text).expect("infra/template.yaml is YAML")
    })
}

fn section(name: &str) -> &'static Mapping {
    template()
        .get(name)
        .and_then(Value::as_mapping)
        .unwrap_or_else(|| panic!("template has a {name} section"))
}

/// `(logical id, resource)` for every resource of `kind`.
fn resources_of(kind: &str) -> Vec<(&'static str, &'static Value)> {
    section("Resources")
        .iter()
        .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some(kind))
        .map(|(id, r)| (id.as_str().expect("string logical id"), r))
        .collect()
}

fn resource(id: &str) -> &'static Value {
    section("Resources")
        .get(id)
        .unwrap_or_else(|| panic!("resource {id} is defined"))
}

fn type_of(id: &str) -> &'static str {
    resource(id)
        .get("Type")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("resource {id} has a Type"))
}

fn prop<'a>(resource: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter()
        .try_fold(resource.get("Properties")?, |v, key| v.get(*key))
}

fn prop_str<'a>(resource: &'a Value, path: &[&str]) -> Option<&'a str> {
    prop(resource, path).and_then(Value::as_str)
}

fn prop_u64(resource: &Value, path: &[&str]) -> Option<u64> {
    prop(resource, path).and_then(Value::as_u64)
}

/// A function property, falling back to `Globals.Function`.
fn function_prop(function: &'static Value, key: &str) -> Option<&'static Value> {
    prop(function, &[key]).or_else(|| {
        template()
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .and_then(|f| f.get(key))
    })
}

/// An intrinsic function as `(name, argument)`, in either spelling: the short tag
/// (`!Ref X`, which serde_yaml 0.9 parses as a tagged value) or the long form
/// (`{Ref: X}`, `{Fn::GetAtt: [X, Arn]}`). Names come back long: `Ref`, `Fn::GetAtt`, ...
fn intrinsic(value: &Value) -> Option<(String, &Value)> {
    match value {
        Value::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let long = match name {
                "Ref" | "Condition" => name.to_string(),
                other => format!("Fn::{other}"),
            };
            Some((long, &tagged.value))
        }
        Value::Mapping(map) if map.len() == 1 => {
            let (key, arg) = map.iter().next()?;
            let key = key.as_str()?;
            (key == "Ref" || key == "Condition" || key.starts_with("Fn::"))
                .then(|| (key.to_string(), arg))
        }
        _ => None,
    }
}

/// The logical id a `Ref` or `GetAtt` points at (`ApiFunction.Alias` → `ApiFunction`).
fn target_of(value: &Value) -> Option<String> {
    let (name, arg) = intrinsic(value)?;
    match name.as_str() {
        "Ref" => Some(arg.as_str()?.split('.').next()?.to_string()),
        "Fn::GetAtt" => match arg {
            Value::String(s) => Some(s.split('.').next()?.to_string()),
            Value::Sequence(seq) => Some(seq.first()?.as_str()?.to_string()),
            _ => None,
        },
        _ => None,
    }
}

/// The `${Name}` / `${Name.Attr}` placeholders of a `Fn::Sub` string, and its literal parts.
fn sub_placeholders(text: &str) -> (Vec<String>, String) {
    let mut names = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        literal.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').expect("closed ${...} in Fn::Sub");
        let inner = &after[..end];
        if let Some(escaped) = inner.strip_prefix('!') {
            literal.push_str(escaped); // ${!Literal} is text, not a reference
        } else {
            names.push(inner.split('.').next().unwrap().to_string());
        }
        rest = &after[end + 1..];
    }
    literal.push_str(rest);
    (names, literal)
}

/// Every logical id or parameter a value refers to, with the literal text it contains.
fn references(value: &Value, refs: &mut BTreeSet<String>, literals: &mut Vec<String>) {
    if let Some((name, arg)) = intrinsic(value) {
        match name.as_str() {
            "Ref" | "Fn::GetAtt" => {
                refs.insert(target_of(value).expect("well-formed Ref/GetAtt"));
            }
            "Fn::Sub" => {
                let (text, vars) = match arg {
                    Value::String(s) => (s.as_str(), None),
                    Value::Sequence(seq) => (
                        seq[0].as_str().expect("Fn::Sub string"),
                        seq.get(1).and_then(Value::as_mapping),
                    ),
                    other => panic!("unexpected Fn::Sub argument {other:?}"),
                };
                let (names, literal) = sub_placeholders(text);
                literals.push(literal);
                let locals: BTreeSet<&str> = vars
                    .map(|m| m.keys().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                refs.extend(names.into_iter().filter(|n| !locals.contains(n.as_str())));
                for v in vars.into_iter().flat_map(|m| m.values()) {
                    references(v, refs, literals);
                }
            }
            _ => references(arg, refs, literals),
        }
        return;
    }
    match value {
        Value::String(s) => literals.push(s.clone()),
        Value::Sequence(seq) => seq.iter().for_each(|v| references(v, refs, literals)),
        Value::Mapping(map) => map.values().for_each(|v| references(v, refs, literals)),
        _ => {}
    }
}

fn is_defined(name: &str) -> bool {
    name.starts_with("AWS::")
        || section("Parameters").contains_key(name)
        || section("Resources").contains_key(name)
}

/// `Fn::FindInMap [Map, Top, Second]` resolved against the template's Mappings.
fn find_in_map(value: &Value) -> &'static Value {
    let (name, arg) = intrinsic(value).expect("an intrinsic");
    assert_eq!(name, "Fn::FindInMap", "expected Fn::FindInMap, got {name}");
    let keys: Vec<&str> = arg
        .as_sequence()
        .expect("FindInMap list")
        .iter()
        .map(|k| k.as_str().expect("literal FindInMap keys"))
        .collect();
    section("Mappings")
        .get(keys[0])
        .and_then(|m| m.get(keys[1]))
        .and_then(|m| m.get(keys[2]))
        .unwrap_or_else(|| panic!("mapping {keys:?} exists"))
}

/// The binary a function runs, from its `CodeUri` (cargo-lambda's `target/lambda/<bin>/`).
fn binary_of(function: &Value) -> String {
    let uri = prop_str(function, &["CodeUri"]).expect("function has a local CodeUri");
    uri.strip_prefix("../target/lambda/")
        .and_then(|rest| rest.strip_suffix('/'))
        .filter(|bin| !bin.is_empty() && !bin.contains('/'))
        .unwrap_or_else(|| panic!("CodeUri {uri} is not ../target/lambda/<bin>/"))
        .to_string()
}

/// Logical id of the function whose binary is `bin`.
fn function_for(bin: &str) -> &'static str {
    resources_of("AWS::Serverless::Function")
        .into_iter()
        .find(|(_, f)| binary_of(f) == bin)
        .map(|(id, _)| id)
        .unwrap_or_else(|| panic!("a function runs the {bin} binary"))
}

fn timeout_of(function_id: &str) -> u64 {
    function_prop(resource(function_id), "Timeout")
        .and_then(Value::as_u64)
        .unwrap_or(3) // Lambda's default
}

#[test]
fn the_functions_are_the_five_cargo_lambda_binaries_on_arm64() {
    let functions = resources_of("AWS::Serverless::Function");
    let bins: BTreeSet<String> = functions.iter().map(|(_, f)| binary_of(f)).collect();
    assert_eq!(bins, FUNCTIONS.iter().map(|s| s.to_string()).collect());
    for (id, function) in functions {
        let get = |key| function_prop(function, key);
        assert_eq!(
            get("Runtime").and_then(Value::as_str),
            Some("provided.al2023"),
            "{id}"
        );
        assert_eq!(
            get("Handler").and_then(Value::as_str),
            Some("bootstrap"),
            "{id}"
        );
        let arch: Vec<&str> = get("Architectures")
            .and_then(Value::as_sequence)
            .map(|s| s.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        assert_eq!(arch, ["arm64"], "{id}");
        assert!(
            prop(function, &["LoggingConfig", "LogGroup"]).is_some(),
            "{id} logs to a log group of the template (with retention)"
        );
    }
    let api = resource(function_for("api"));
    assert_eq!(prop_str(api, &["AutoPublishAlias"]), Some("live"));
    assert!(
        prop(
            api,
            &[
                "ProvisionedConcurrencyConfig",
                "ProvisionedConcurrentExecutions"
            ]
        )
        .is_some(),
        "api has provisioned concurrency"
    );
}

/// Fails until every function's binary exists as `handlers/src/bin/<name>.rs`.
#[test]
fn every_function_binary_exists_in_the_workspace() {
    let missing: Vec<String> = resources_of("AWS::Serverless::Function")
        .into_iter()
        .map(|(_, f)| format!("handlers/src/bin/{}.rs", binary_of(f)))
        .filter(|path| !repo_root().join(path).is_file())
        .collect();
    assert!(
        missing.is_empty(),
        "infra/template.yaml deploys binaries the workspace lacks: {missing:?}"
    );
}

#[test]
fn every_queue_outlasts_six_times_its_consumer_timeout() {
    let mappings = resources_of("AWS::Lambda::EventSourceMapping");
    assert!(
        !mappings.is_empty(),
        "the worker consumes the diagnosis queue"
    );
    let mut consumed = BTreeSet::new();
    for (id, mapping) in mappings {
        let queue = target_of(prop(mapping, &["EventSourceArn"]).expect("EventSourceArn"))
            .expect("EventSourceArn refers to a template resource");
        let function = target_of(prop(mapping, &["FunctionName"]).expect("FunctionName"))
            .expect("FunctionName refers to a template resource");
        assert_eq!(type_of(&queue), "AWS::SQS::Queue", "{id}");
        let visibility = prop_u64(resource(&queue), &["VisibilityTimeout"]).unwrap_or(30);
        let window = prop_u64(mapping, &["MaximumBatchingWindowInSeconds"]).unwrap_or(0);
        let timeout = timeout_of(&function);
        assert!(
            visibility >= 6 * timeout + window,
            "{queue}: visibility {visibility} s < 6 x {function}'s timeout {timeout} s + batching window {window} s"
        );
        let response_types: Vec<&str> = prop(mapping, &["FunctionResponseTypes"])
            .and_then(Value::as_sequence)
            .map(|s| s.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        assert_eq!(response_types, ["ReportBatchItemFailures"], "{id}");
        consumed.insert((queue, function));
    }
    assert!(consumed.contains(&(
        "DiagnosisQueue".to_string(),
        function_for("worker").to_string()
    )));
}

#[test]
fn every_queue_has_a_dead_letter_queue_or_is_one() {
    let queues = resources_of("AWS::SQS::Queue");
    // Everything the template names as a dead-letter target, whatever delivers to it.
    let mut dead_letter_targets = BTreeSet::new();
    for (_, queue) in &queues {
        if let Some(arn) = prop(queue, &["RedrivePolicy", "deadLetterTargetArn"]) {
            dead_letter_targets.insert(target_of(arn).expect("DLQ is a template queue"));
        }
    }
    for (_, rule) in resources_of("AWS::Events::Rule") {
        for target in prop(rule, &["Targets"])
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            if let Some(arn) = target.get("DeadLetterConfig").and_then(|d| d.get("Arn")) {
                dead_letter_targets.insert(target_of(arn).expect("DLQ is a template queue"));
            }
        }
    }
    for (_, schedule) in resources_of("AWS::Scheduler::Schedule") {
        if let Some(arn) = prop(schedule, &["Target", "DeadLetterConfig", "Arn"]) {
            dead_letter_targets.insert(target_of(arn).expect("DLQ is a template queue"));
        }
    }
    for (_, function) in resources_of("AWS::Serverless::Function") {
        let path = [
            "EventInvokeConfig",
            "DestinationConfig",
            "OnFailure",
            "Destination",
        ];
        if let Some(arn) = prop(function, &path) {
            dead_letter_targets.insert(target_of(arn).expect("DLQ is a template queue"));
        }
    }
    for (id, queue) in &queues {
        if prop(queue, &["RedrivePolicy"]).is_some() {
            let max = prop_u64(queue, &["RedrivePolicy", "maxReceiveCount"]).unwrap_or(0);
            assert!(max >= 1, "{id}: maxReceiveCount");
        } else {
            assert!(
                dead_letter_targets.contains(*id),
                "{id} has no dead-letter queue and is no one's dead-letter queue"
            );
        }
    }
    for target in &dead_letter_targets {
        assert_eq!(type_of(target), "AWS::SQS::Queue", "{target}");
        let dlq = resource(target);
        assert!(
            prop(dlq, &["RedrivePolicy"]).is_none(),
            "{target} is a DLQ with a DLQ"
        );
        assert_eq!(
            prop_u64(dlq, &["MessageRetentionPeriod"]),
            Some(1_209_600),
            "{target} keeps dead letters for the maximum 14 days"
        );
    }
    for name in ["DiagnosisQueue", "LocalJobsQueue"] {
        assert!(prop(resource(name), &["RedrivePolicy"]).is_some(), "{name}");
    }
}

#[test]
fn function_environments_name_only_template_resources() {
    for (id, function) in resources_of("AWS::Serverless::Function") {
        let vars = prop(function, &["Environment", "Variables"])
            .and_then(Value::as_mapping)
            .unwrap_or_else(|| panic!("{id} has environment variables"));
        for (key, value) in vars {
            let key = key.as_str().expect("variable name");
            let mut refs = BTreeSet::new();
            let mut literals = Vec::new();
            references(value, &mut refs, &mut literals);
            for name in &refs {
                assert!(
                    is_defined(name),
                    "{id}.{key} refers to {name}, which the template does not define"
                );
            }
            for text in &literals {
                for smell in ["arn:", "amazonaws.com", "https://", "sqs.", ".rds."] {
                    assert!(
                        !text.contains(smell),
                        "{id}.{key} hard-codes a resource ({text:?}); use !Ref/!GetAtt/!Sub"
                    );
                }
            }
        }
    }
    // The relay and the worker really are wired to the template's queue, bus and proxy.
    let projector = resource(function_for("projector"));
    let env = |f: &'static Value, key: &str| {
        let mut refs = BTreeSet::new();
        references(
            prop(f, &["Environment", "Variables", key]).unwrap_or_else(|| panic!("{key}")),
            &mut refs,
            &mut Vec::new(),
        );
        refs
    };
    assert!(env(projector, "DIAGNOSIS_QUEUE_URL").contains("DiagnosisQueue"));
    assert!(env(projector, "EVENT_BUS_NAME").contains("EventBus"));
    for bin in FUNCTIONS {
        assert!(
            env(resource(function_for(bin)), "DATABASE_URL").contains("DbProxy"),
            "{bin} connects through RDS Proxy"
        );
    }
    assert!(
        env(resource(function_for("scheduler")), "LOCAL_JOBS_QUEUE_URL").contains("LocalJobsQueue")
    );
}

/// `cron(minutes hours day-of-month month day-of-week year)` → its six fields.
fn cron_fields(expression: &str) -> Vec<&str> {
    let inner = expression
        .strip_prefix("cron(")
        .and_then(|e| e.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{expression} is a cron() expression"));
    let fields: Vec<&str> = inner.split_whitespace().collect();
    assert_eq!(fields.len(), 6, "{expression} has six fields");
    fields
}

/// Schedules by the `job` of their JSON input: (expression, timezone, target logical id).
fn schedules() -> BTreeMap<String, (String, String, String)> {
    resources_of("AWS::Scheduler::Schedule")
        .into_iter()
        .map(|(id, s)| {
            let input: serde_json::Value = serde_json::from_str(
                prop_str(s, &["Target", "Input"]).unwrap_or_else(|| panic!("{id} has an Input")),
            )
            .expect("schedule input is JSON");
            let job = input["job"]
                .as_str()
                .expect("input names its job")
                .to_string();
            let expression = prop_str(s, &["ScheduleExpression"]).unwrap().to_string();
            // EventBridge Scheduler's default time zone is UTC.
            let zone = prop_str(s, &["ScheduleExpressionTimezone"])
                .unwrap_or("UTC")
                .to_string();
            let target =
                target_of(prop(s, &["Target", "Arn"]).unwrap()).expect("target in template");
            (job, (expression, zone, target))
        })
        .collect()
}

#[test]
fn schedules_export_weekly_on_sunday_at_two_archive_nightly_and_catch_up_every_minute() {
    let schedules = schedules();
    let scheduler = function_for("scheduler").to_string();
    let projector = function_for("projector").to_string();

    let (expr, zone, target) = &schedules["fine_tune_export"];
    assert_eq!(expr, "cron(0 2 ? * SUN *)");
    assert_eq!(zone, "UTC");
    assert_eq!(target, &scheduler);

    let (expr, zone, target) = &schedules["audit_archive"];
    let f = cron_fields(expr);
    assert!(
        f[0].parse::<u8>().is_ok_and(|m| m < 60),
        "{expr}: one fixed minute"
    );
    assert!(
        f[1].parse::<u8>().is_ok_and(|h| h < 24),
        "{expr}: one fixed hour"
    );
    assert!(
        matches!((f[2], f[4]), ("*", "?") | ("?", "*")),
        "{expr}: every day"
    );
    assert_eq!((f[3], f[5]), ("*", "*"), "{expr}: every month, every year");
    assert_eq!(zone, "UTC");
    assert_eq!(target, &scheduler);

    // Just after every month's budgets renew at midnight UTC on the 1st, and daily for what
    // a plan change's resumption missed.
    let (expr, zone, target) = &schedules["budget_resume"];
    assert_eq!(expr, "cron(10 0 * * ? *)");
    assert_eq!(zone, "UTC");
    assert_eq!(target, &scheduler);

    let (expr, _, target) = &schedules["catch_up"];
    assert_eq!(expr, "rate(1 minute)");
    assert_eq!(target, &projector);
}

#[test]
fn every_bucket_is_kms_encrypted_private_and_tls_only() {
    let buckets = resources_of("AWS::S3::Bucket");
    let ids: BTreeSet<&str> = buckets.iter().map(|(id, _)| *id).collect();
    for expected in [
        "ArtifactsBucket",
        "UploadsBucket",
        "AuditArchiveBucket",
        "StaticSiteBucket",
    ] {
        assert!(ids.contains(expected), "{expected} exists");
    }
    let policies: BTreeMap<String, &Value> = resources_of("AWS::S3::BucketPolicy")
        .into_iter()
        .map(|(_, p)| (target_of(prop(p, &["Bucket"]).unwrap()).unwrap(), p))
        .collect();
    for (id, bucket) in buckets {
        let rules = prop(
            bucket,
            &["BucketEncryption", "ServerSideEncryptionConfiguration"],
        )
        .and_then(Value::as_sequence)
        .unwrap_or_else(|| panic!("{id} has default encryption"));
        for rule in rules {
            let default = &rule["ServerSideEncryptionByDefault"];
            assert_eq!(default["SSEAlgorithm"].as_str(), Some("aws:kms"), "{id}");
            let key = target_of(&default["KMSMasterKeyID"]).expect("key from the template");
            assert_eq!(type_of(&key), "AWS::KMS::Key", "{id}");
        }
        for flag in [
            "BlockPublicAcls",
            "BlockPublicPolicy",
            "IgnorePublicAcls",
            "RestrictPublicBuckets",
        ] {
            assert_eq!(
                prop(bucket, &["PublicAccessBlockConfiguration", flag]).and_then(Value::as_bool),
                Some(true),
                "{id}.{flag}"
            );
        }
        let policy = policies
            .get(id)
            .unwrap_or_else(|| panic!("{id} has a bucket policy"));
        let statements = prop(policy, &["PolicyDocument", "Statement"])
            .and_then(Value::as_sequence)
            .unwrap();
        assert!(
            statements
                .iter()
                .any(|s| s["Effect"].as_str() == Some("Deny")
                    && s["Condition"]["Bool"]["aws:SecureTransport"].as_str() == Some("false")),
            "{id} denies requests without TLS"
        );
    }
    let audit = resource("AuditArchiveBucket");
    assert_eq!(
        prop_str(
            audit,
            &[
                "ObjectLockConfiguration",
                "Rule",
                "DefaultRetention",
                "Mode"
            ]
        ),
        Some("COMPLIANCE")
    );
    let transitions = prop(audit, &["LifecycleConfiguration", "Rules"])
        .and_then(Value::as_sequence)
        .unwrap()
        .iter()
        .filter_map(|r| r.get("Transitions").and_then(Value::as_sequence))
        .flatten()
        .count();
    assert!(transitions > 0, "the audit archive moves to colder storage");
}

/// Every plan tier of the domain, spelled as the API and events spell it.
fn plan_tiers() -> BTreeSet<String> {
    let all = [
        PlanTier::Starter,
        PlanTier::Professional,
        PlanTier::Enterprise,
        PlanTier::CostSensitive,
    ];
    // A new tier fails to compile here until the template gets its usage plan.
    for tier in all {
        match tier {
            PlanTier::Starter
            | PlanTier::Professional
            | PlanTier::Enterprise
            | PlanTier::CostSensitive => {}
        }
    }
    all.iter()
        .map(|t| {
            serde_json::to_value(t)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn usage_plans_are_exactly_the_plan_tiers_each_with_limits() {
    let mut tiers = BTreeSet::new();
    for (id, plan) in resources_of("AWS::ApiGateway::UsagePlan") {
        let tag = prop(plan, &["Tags"])
            .and_then(Value::as_sequence)
            .and_then(|tags| {
                tags.iter()
                    .find(|t| t["Key"].as_str() == Some("casebook:tier"))
            })
            .unwrap_or_else(|| panic!("{id} has a casebook:tier tag"));
        let tier = find_in_map(&tag["Value"]).as_str().unwrap().to_string();
        for path in [
            ["Throttle", "RateLimit"],
            ["Throttle", "BurstLimit"],
            ["Quota", "Limit"],
        ] {
            let limit = find_in_map(prop(plan, &path).unwrap())
                .as_u64()
                .unwrap_or(0);
            assert!(limit > 0, "{id}.{path:?}");
        }
        let stages = prop(plan, &["ApiStages"])
            .and_then(Value::as_sequence)
            .unwrap();
        assert!(stages
            .iter()
            .all(|s| target_of(&s["ApiId"]).as_deref() == Some("RestApi")));
        assert!(tiers.insert(tier), "one usage plan per tier");
    }
    assert_eq!(tiers, plan_tiers());
    assert_eq!(
        prop_str(resource("RestApi"), &["ApiKeySourceType"]),
        Some("AUTHORIZER"),
        "the authorizer picks the usage plan key"
    );
    assert!(
        resources_of("AWS::ApiGateway::ApiKey").is_empty(),
        "no key shared by a plan's tenants: each tenant's own is made at run time"
    );
}

/// The `!Sub` text of a value (`casebook-${Stage}-starter`).
fn sub_text(value: &Value) -> &str {
    match intrinsic(value) {
        Some((name, arg)) if name == "Fn::Sub" => arg.as_str().expect("a plain Sub string"),
        _ => panic!("{value:?} is not a !Sub"),
    }
}

#[test]
fn the_projector_keeps_each_tenants_key_on_the_usage_plans_the_authorizer_reads() {
    let prefix_of = |bin: &str| {
        sub_text(
            prop(
                resource(function_for(bin)),
                &["Environment", "Variables", "CASEBOOK_USAGE_PLAN_PREFIX"],
            )
            .unwrap_or_else(|| panic!("{bin} names the usage plans")),
        )
        .to_owned()
    };
    let prefix = prefix_of("projector");
    assert_eq!(prefix_of("authorizer"), prefix);
    for (id, plan) in resources_of("AWS::ApiGateway::UsagePlan") {
        let name = sub_text(prop(plan, &["UsagePlanName"]).unwrap());
        let tier = name.strip_prefix(prefix.as_str()).unwrap_or_default();
        assert!(
            plan_tiers().contains(tier),
            "{id} is named {prefix}<plan>: {name}"
        );
    }
    let statements = role_statements("projector");
    let allows = |action: &str, resource_text: &str| {
        statements.iter().any(|s| {
            let actions = match &s["Action"] {
                Value::Sequence(list) => list.iter().filter_map(Value::as_str).collect(),
                other => vec![other.as_str().unwrap_or_default()],
            };
            let resources: Vec<&Value> = match &s["Resource"] {
                Value::Sequence(list) => list.iter().collect(),
                other => vec![other],
            };
            s["Effect"].as_str() == Some("Allow")
                && actions.contains(&action)
                && resources
                    .iter()
                    .any(|r| intrinsic(r).is_some() && sub_text(r).ends_with(resource_text))
        })
    };
    assert!(
        allows("apigateway:POST", "::/apikeys"),
        "creates tenants' keys"
    );
    assert!(allows("apigateway:GET", "::/usageplans"), "finds the plans");
    assert!(
        allows("apigateway:POST", "::/usageplans/*/keys*"),
        "puts keys on plans"
    );
    assert!(
        allows("apigateway:DELETE", "::/usageplans/*/keys*"),
        "takes keys off plans"
    );
}

/// Every statement of the inline policies of the role `bin`'s function runs as.
fn role_statements(bin: &str) -> Vec<&'static Value> {
    let role = target_of(function_prop(resource(function_for(bin)), "Role").unwrap())
        .unwrap_or_else(|| panic!("the {bin} function's role"));
    prop(resource(&role), &["Policies"])
        .and_then(Value::as_sequence)
        .unwrap()
        .iter()
        .flat_map(|policy| {
            policy["PolicyDocument"]["Statement"]
                .as_sequence()
                .unwrap()
                .iter()
        })
        .collect()
}

/// The `!Sub` texts of a statement's `Resource`, or of one of its condition's values.
fn sub_texts(value: &Value) -> Vec<&str> {
    match value {
        Value::Sequence(list) => list.iter().map(sub_text).collect(),
        other => vec![sub_text(other)],
    }
}

#[test]
fn the_models_are_the_designs_invoked_through_inference_profiles_the_worker_may_use() {
    let design = [
        ("TriageModelId", "us.anthropic.claude-3-5-haiku"),
        ("StandardModelId", "us.anthropic.claude-sonnet-4"),
        ("StrongestModelId", "us.anthropic.claude-opus-4"),
        ("OpenWeightsModelId", "us.meta.llama3"),
    ];
    let prices: serde_json::Value = serde_json::from_str(
        section("Parameters")["BedrockPrices"]["Default"]
            .as_str()
            .expect("default prices"),
    )
    .expect("prices are JSON");
    let invokes = |statement: &Value| {
        statement["Effect"].as_str() == Some("Allow")
            && statement["Action"]
                .as_sequence()
                .is_some_and(|actions| actions.iter().any(|a| a == "bedrock:InvokeModel"))
    };
    let statements: Vec<_> = role_statements("worker")
        .into_iter()
        .filter(|statement| invokes(statement))
        .collect();
    let profile = |parameter: &str| {
        format!(
            "arn:${{AWS::Partition}}:bedrock:${{AWS::Region}}:${{AWS::AccountId}}:inference-profile/${{{parameter}}}"
        )
    };
    for (parameter, model) in design {
        let default = section("Parameters")[parameter]["Default"]
            .as_str()
            .unwrap();
        assert!(
            default.starts_with(model),
            "{parameter} defaults to {model}…: {default}"
        );
        assert!(
            prices.get(default).is_some(),
            "BedrockPrices prices {default}"
        );
        let profile = profile(parameter);
        assert!(
            statements
                .iter()
                .any(|s| sub_texts(&s["Resource"]).contains(&profile.as_str())),
            "the worker may invoke the {parameter} profile"
        );
        assert!(
            statements.iter().any(|s| {
                sub_texts(&s["Resource"]) == ["arn:${AWS::Partition}:bedrock:*::foundation-model/*"]
                    && sub_texts(&s["Condition"]["ArnLike"]["bedrock:InferenceProfileArn"])
                        .contains(&profile.as_str())
            }),
            "the worker may invoke the foundation models behind {parameter}'s profile, through it only"
        );
    }
    // The code's defaults are the template's: a function without the variables runs the same.
    let code = casebook_adapters::ai::config::AiConfig::from_lookup(|_| None).expect("defaults");
    let models = &code.bedrock.models;
    let defaults = [
        &models.triage,
        &models.standard,
        &models.strongest,
        &models.open_weights,
    ];
    for ((parameter, _), default) in design.iter().zip(defaults) {
        assert_eq!(
            section("Parameters")[*parameter]["Default"].as_str(),
            Some(default.as_str()),
            "{parameter}"
        );
    }
}

/// The public methods: a practice signs up before it has a user, a token or an API key.
const PUBLIC_METHODS: [(&str, &str); 2] = [("POST", "/v1/signup"), ("GET", "/v1/plans")];

/// The path of an API Gateway resource (`/v1/{proxy+}`), from its parents.
fn api_path(resource_id: &str) -> String {
    let api_resource = resource(resource_id);
    let part = prop_str(api_resource, &["PathPart"])
        .unwrap_or_else(|| panic!("{resource_id} has a PathPart"));
    let parent = target_of(prop(api_resource, &["ParentId"]).expect("ParentId"))
        .expect("ParentId refers to a template resource");
    match type_of(&parent) {
        "AWS::ApiGateway::RestApi" => format!("/{part}"), // RestApi.RootResourceId
        _ => format!("{}/{part}", api_path(&parent)),
    }
}

/// `(HTTP method, path)` of an `AWS::ApiGateway::Method`.
fn method_route(method: &Value) -> (String, String) {
    let verb = prop_str(method, &["HttpMethod"]).expect("HttpMethod");
    let on = target_of(prop(method, &["ResourceId"]).expect("ResourceId")).expect("a resource");
    (verb.to_string(), api_path(&on))
}

/// The checkov checks a resource skips (`Metadata.checkov.skip[].id`), each with its reason.
fn checkov_skips(resource: &Value) -> BTreeMap<String, String> {
    resource
        .get("Metadata")
        .and_then(|m| m.get("checkov"))
        .and_then(|c| c.get("skip"))
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .map(|skip| {
            let id = skip["id"].as_str().expect("skip id").to_string();
            let reason = skip["comment"].as_str().unwrap_or_default().to_string();
            (id, reason)
        })
        .collect()
}

#[test]
fn every_api_method_but_sign_up_and_plans_goes_through_the_authorizer_and_a_usage_plan() {
    let methods = resources_of("AWS::ApiGateway::Method");
    assert!(!methods.is_empty());
    let public: BTreeSet<(String, String)> = PUBLIC_METHODS
        .iter()
        .map(|(verb, path)| (verb.to_string(), path.to_string()))
        .collect();
    let mut seen_public = BTreeSet::new();
    for (id, method) in methods {
        // Every method, public or not, is the api function's live alias (routes are axum's).
        let mut refs = BTreeSet::new();
        references(
            prop(method, &["Integration", "Uri"]).expect("integration Uri"),
            &mut refs,
            &mut Vec::new(),
        );
        assert_eq!(
            prop_str(method, &["Integration", "Type"]),
            Some("AWS_PROXY"),
            "{id}"
        );
        assert!(
            refs.contains(&format!("{}Aliaslive", function_for("api"))),
            "{id} invokes the api function's live alias"
        );
        let route = method_route(method);
        let skips = checkov_skips(method);
        if public.contains(&route) {
            assert_eq!(
                prop_str(method, &["AuthorizationType"]),
                Some("NONE"),
                "{id}"
            );
            assert_eq!(
                prop(method, &["ApiKeyRequired"]).and_then(Value::as_bool),
                Some(false),
                "{id}: no API key before there is a tenant"
            );
            assert!(prop(method, &["AuthorizerId"]).is_none(), "{id}");
            for check in ["CKV_CASEBOOK_6", "CKV_AWS_59"] {
                assert!(
                    skips
                        .get(check)
                        .is_some_and(|reason| !reason.trim().is_empty()),
                    "{id} skips {check} with a reason"
                );
            }
            seen_public.insert(route);
            continue;
        }
        assert!(skips.is_empty(), "{id} skips no checkov check: {skips:?}");
        assert_eq!(
            prop_str(method, &["AuthorizationType"]),
            Some("CUSTOM"),
            "{id} {route:?}"
        );
        let authorizer = target_of(prop(method, &["AuthorizerId"]).unwrap()).unwrap();
        assert_eq!(type_of(&authorizer), "AWS::ApiGateway::Authorizer", "{id}");
        // AuthorizerUri is a !Sub naming the authorizer function's ARN.
        let mut refs = BTreeSet::new();
        let uri = prop(resource(&authorizer), &["AuthorizerUri"]).unwrap();
        references(uri, &mut refs, &mut Vec::new());
        assert!(
            refs.contains(function_for("authorizer")),
            "{id} is authorized by the authorizer function"
        );
        assert_eq!(
            prop(method, &["ApiKeyRequired"]).and_then(Value::as_bool),
            Some(true),
            "{id}"
        );
    }
    assert_eq!(seen_public, public, "the public methods exist");
}

#[test]
fn the_stage_caps_the_public_methods_and_deploys_every_method() {
    let (_, stage) = resources_of("AWS::ApiGateway::Stage")
        .into_iter()
        .next()
        .expect("a stage");
    let settings = prop(stage, &["MethodSettings"])
        .and_then(Value::as_sequence)
        .expect("MethodSettings");
    let throttle = |path: &str, verb: &str| {
        settings
            .iter()
            .find(|s| {
                s["ResourcePath"].as_str() == Some(path) && s["HttpMethod"].as_str() == Some(verb)
            })
            .map(|s| {
                (
                    s["ThrottlingRateLimit"].as_f64().expect("a rate"),
                    s["ThrottlingBurstLimit"].as_u64().expect("a burst"),
                )
            })
    };
    let (default_rate, default_burst) = throttle("/*", "*").expect("the stage's default throttle");
    for (verb, path) in PUBLIC_METHODS {
        // MethodSettings spells the path's slashes ~1: /v1/signup → /~1v1~1signup.
        let encoded = format!("/{}", path.replace('/', "~1"));
        let (rate, burst) = throttle(&encoded, verb)
            .unwrap_or_else(|| panic!("the stage throttles {verb} {path} (as {encoded})"));
        assert!(
            rate < default_rate && burst < default_burst,
            "{verb} {path}: {rate}/s, burst {burst}, below the stage's {default_rate}/s"
        );
        if path == "/v1/signup" {
            assert!(
                rate <= 5.0 && burst <= 10,
                "sign-up is capped low: {rate}/s, burst {burst}"
            );
        }
    }
    // A deployment snapshots the methods that exist when it is made: it must come after all.
    let deployment = target_of(prop(stage, &["DeploymentId"]).unwrap()).unwrap();
    assert_eq!(type_of(&deployment), "AWS::ApiGateway::Deployment");
    let depends: BTreeSet<&str> = match resource(&deployment).get("DependsOn") {
        Some(Value::String(one)) => BTreeSet::from([one.as_str()]),
        Some(Value::Sequence(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => BTreeSet::new(),
    };
    for (id, _) in resources_of("AWS::ApiGateway::Method") {
        assert!(depends.contains(id), "{deployment} depends on {id}");
    }
}

/// Every IAM statement of the template (roles' inline policies, managed policies, resource
/// policies), with the logical id of the resource it is in.
fn iam_statements() -> Vec<(&'static str, &'static Value)> {
    fn walk(value: &'static Value, out: &mut Vec<&'static Value>) {
        match value {
            Value::Mapping(map) => {
                if map.contains_key("Effect") && map.contains_key("Action") {
                    out.push(value);
                }
                map.values().for_each(|v| walk(v, out));
            }
            Value::Sequence(seq) => seq.iter().for_each(|v| walk(v, out)),
            Value::Tagged(tagged) => walk(&tagged.value, out),
            _ => {}
        }
    }
    section("Resources")
        .iter()
        .flat_map(|(id, r)| {
            let mut found = Vec::new();
            walk(r, &mut found);
            let id = id.as_str().expect("string logical id");
            found.into_iter().map(move |s| (id, s))
        })
        .collect()
}

fn actions_of(statement: &Value) -> Vec<&str> {
    match &statement["Action"] {
        Value::Sequence(list) => list.iter().filter_map(Value::as_str).collect(),
        other => vec![other.as_str().unwrap_or_default()],
    }
}

#[test]
fn only_the_projector_administers_the_user_pool_and_only_that_pool() {
    let projector = resource(function_for("projector"));
    let projector_role =
        target_of(function_prop(projector, "Role").unwrap()).expect("the projector's role");
    let expected: BTreeSet<&str> = [
        "cognito-idp:AdminCreateUser",
        "cognito-idp:AdminGetUser",
        "cognito-idp:AdminAddUserToGroup",
        "cognito-idp:AdminRemoveUserFromGroup",
        "cognito-idp:AdminListGroupsForUser",
        "cognito-idp:AdminDisableUser",
        "cognito-idp:AdminEnableUser",
        "cognito-idp:AdminUserGlobalSignOut",
    ]
    .into();
    let mut granted = BTreeSet::new();
    for (owner, statement) in iam_statements() {
        let cognito: Vec<&str> = actions_of(statement)
            .into_iter()
            .filter(|a| *a == "*" || a.to_ascii_lowercase().starts_with("cognito-idp:"))
            .collect();
        if cognito.is_empty() {
            continue;
        }
        assert_eq!(
            owner, projector_role,
            "only the projector's role may call Cognito ({cognito:?} in {owner})"
        );
        assert_eq!(statement["Effect"].as_str(), Some("Allow"));
        let pool = &statement["Resource"];
        assert!(
            matches!(intrinsic(pool), Some((name, _)) if name == "Fn::GetAtt")
                && target_of(pool).as_deref() == Some("UserPool"),
            "the projector's Cognito statement names the user pool's ARN only: {pool:?}"
        );
        for action in cognito {
            assert!(
                expected.contains(action),
                "{action} is not the people subscription's"
            );
            granted.insert(action);
        }
    }
    assert_eq!(
        granted, expected,
        "the people subscription's calls are all granted"
    );
    // SAM's own policy templates would grant beside the roles: no function uses them.
    for (id, function) in resources_of("AWS::Serverless::Function") {
        assert!(
            prop(function, &["Policies"]).is_none(),
            "{id} has only its Role"
        );
    }
    let env = |key: &str| {
        target_of(
            prop(projector, &["Environment", "Variables", key]).unwrap_or_else(|| panic!("{key}")),
        )
    };
    assert_eq!(env("CASEBOOK_USER_POOL_ID").as_deref(), Some("UserPool"));
    assert_eq!(
        env("CASEBOOK_USER_POOL_CLIENT_ID").as_deref(),
        Some("UserPoolClient")
    );
}

#[test]
fn the_dashboard_client_is_public_and_only_admins_create_users() {
    let client = resource("UserPoolClient");
    assert_eq!(
        prop(client, &["GenerateSecret"]).and_then(Value::as_bool),
        Some(false),
        "a browser keeps no secret"
    );
    let flows: BTreeSet<&str> = prop(client, &["ExplicitAuthFlows"])
        .and_then(Value::as_sequence)
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for flow in [
        "ALLOW_USER_PASSWORD_AUTH",
        "ALLOW_USER_SRP_AUTH",
        "ALLOW_REFRESH_TOKEN_AUTH",
    ] {
        assert!(flows.contains(flow), "the dashboard signs in with {flow}");
    }
    let allowed: BTreeSet<&str> = [
        "ALLOW_USER_PASSWORD_AUTH",
        "ALLOW_USER_SRP_AUTH",
        "ALLOW_REFRESH_TOKEN_AUTH",
        "ALLOW_ADMIN_USER_PASSWORD_AUTH", // operators, with IAM credentials
    ]
    .into();
    assert!(flows.is_subset(&allowed), "{flows:?}");
    assert_eq!(
        prop(client, &["EnableTokenRevocation"]).and_then(Value::as_bool),
        Some(true),
        "sign-out revokes refresh tokens"
    );
    for bin in ["api", "authorizer"] {
        let audience = prop(
            resource(function_for(bin)),
            &["Environment", "Variables", "CASEBOOK_JWT_AUDIENCE"],
        )
        .unwrap_or_else(|| panic!("{bin} checks the token's audience"));
        assert_eq!(
            target_of(audience).as_deref(),
            Some("UserPoolClient"),
            "{bin}"
        );
    }

    let pool = resource("UserPool");
    assert_eq!(
        prop(pool, &["AdminCreateUserConfig", "AllowAdminCreateUserOnly"]).and_then(Value::as_bool),
        Some(true),
        "no self sign-up in Cognito: the client would choose its own attributes"
    );
    assert!(
        prop(pool, &["LambdaConfig"]).is_none(),
        "no Cognito trigger: custom:tenant_id is set by AdminCreateUser only"
    );
    let usernames = prop(pool, &["UsernameAttributes"])
        .and_then(Value::as_sequence)
        .unwrap();
    assert_eq!(usernames, &[Value::from("email")]);
    let recovery = prop(pool, &["AccountRecoverySetting", "RecoveryMechanisms"])
        .and_then(Value::as_sequence)
        .unwrap();
    assert!(recovery
        .iter()
        .any(|m| m["Name"].as_str() == Some("verified_email")));
    let invitation = sub_text(
        prop(
            pool,
            &[
                "AdminCreateUserConfig",
                "InviteMessageTemplate",
                "EmailMessage",
            ],
        )
        .expect("Casebook's invitation"),
    );
    for placeholder in ["{username}", "{####}"] {
        assert!(
            invitation.contains(placeholder),
            "the invitation has {placeholder}"
        );
    }
    let verification = prop_str(pool, &["VerificationMessageTemplate", "EmailMessage"])
        .expect("Casebook's verification message");
    assert!(verification.contains("{####}"));
}

#[test]
fn cognito_groups_are_the_domain_roles() {
    let groups: BTreeSet<String> = resources_of("AWS::Cognito::UserPoolGroup")
        .into_iter()
        .map(|(_, g)| prop_str(g, &["GroupName"]).unwrap().to_string())
        .collect();
    let roles: BTreeSet<String> = [Role::Customer, Role::Consultant, Role::Auditor, Role::Admin]
        .iter()
        .filter(|role| match role {
            Role::Customer | Role::Consultant | Role::Auditor | Role::Admin => true,
            // The platform itself and its operator: never a tenant's user.
            Role::System | Role::Operator => false,
        })
        .map(|r| {
            serde_json::to_value(r)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(groups, roles);
    let schema = prop(resource("UserPool"), &["Schema"])
        .and_then(Value::as_sequence)
        .unwrap();
    let tenant = schema
        .iter()
        .find(|a| a["Name"].as_str() == Some("tenant_id"))
        .expect("custom:tenant_id attribute");
    assert_eq!(
        tenant["Mutable"].as_bool(),
        Some(false),
        "tenant_id is immutable"
    );
}

#[test]
fn the_auto_resolve_rule_sends_proposals_to_the_projector() {
    let (_, rule) = resources_of("AWS::Events::Rule")
        .into_iter()
        .find(|(id, _)| *id == "AutoResolveRule")
        .expect("AutoResolveRule");
    assert_eq!(
        target_of(prop(rule, &["EventBusName"]).unwrap()).as_deref(),
        Some("EventBus")
    );
    let kinds = prop(rule, &["EventPattern", "detail-type"])
        .and_then(Value::as_sequence)
        .unwrap();
    assert_eq!(kinds, &[Value::from("DiagnosisProposed")]);
    let targets = prop(rule, &["Targets"])
        .and_then(Value::as_sequence)
        .unwrap();
    assert!(targets
        .iter()
        .any(|t| target_of(&t["Arn"]).as_deref() == Some(function_for("projector"))));
    // The projector's relay publishes with the source the rule matches.
    let source = prop_str(
        resource(function_for("projector")),
        &["Environment", "Variables", "EVENT_SOURCE"],
    );
    let pattern = prop(rule, &["EventPattern", "source"])
        .and_then(Value::as_sequence)
        .unwrap();
    assert_eq!(pattern, &[Value::from(source.expect("EVENT_SOURCE"))]);
}

#[test]
fn short_form_intrinsics_parse_as_tagged_values() {
    // The template's !Ref / !GetAtt / !Sub arrive as serde_yaml tagged values, and the
    // helpers above read both spellings alike.
    let short: Value =
        serde_yaml::from_str("a: !GetAtt Q.Arn\nb: !Ref X\nc: !Sub 'x-${Y.Z}-${!Lit}'").unwrap();
    let long: Value = serde_yaml::from_str(
        "a: {Fn::GetAtt: [Q, Arn]}\nb: {Ref: X}\nc: {Fn::Sub: 'x-${Y.Z}-${!Lit}'}",
    )
    .unwrap();
    for v in [&short, &long] {
        assert_eq!(target_of(&v["a"]).as_deref(), Some("Q"));
        assert_eq!(target_of(&v["b"]).as_deref(), Some("X"));
        let mut refs = BTreeSet::new();
        let mut literals = Vec::new();
        references(&v["c"], &mut refs, &mut literals);
        assert_eq!(refs, BTreeSet::from(["Y".to_string()]));
        assert_eq!(literals, ["x--Lit"]);
    }
    assert!(matches!(short["a"], Value::Tagged(_)));
}

/// A function's environment as the process sees it once deployed: literals as written,
/// `!Ref <parameter>` as the parameter's default, and every resource reference (`!Ref`,
/// `!GetAtt`, `${X}` in `!Sub`) as a stand-in value of the right shape.
fn deployed_environment(function: &'static Value) -> BTreeMap<String, String> {
    fn resolve(value: &Value) -> String {
        let parameter_default = |name: &str| {
            section("Parameters")
                .get(name)
                .and_then(|p| p.get("Default"))
                .map(resolve)
        };
        match intrinsic(value) {
            Some((name, arg)) if name == "Ref" => {
                let target = arg.as_str().expect("Ref names a string");
                parameter_default(target).unwrap_or_else(|| format!("{target}-id"))
            }
            Some((name, arg)) if name == "Fn::Sub" => {
                let text = arg.as_str().expect("a plain Sub string");
                let (names, _) = sub_placeholders(text);
                names.iter().fold(text.to_owned(), |text, name| {
                    let stand_in = parameter_default(name)
                        .unwrap_or_else(|| format!("{}.example", name.replace('.', "-")));
                    text.replace(&format!("${{{name}}}"), &stand_in.to_lowercase())
                })
            }
            Some((name, _)) => format!("{name}-value"),
            None => match value {
                Value::String(text) => text.clone(),
                Value::Number(number) => number.to_string(),
                Value::Bool(flag) => flag.to_string(),
                other => panic!("unexpected environment value {other:?}"),
            },
        }
    }
    prop(function, &["Environment", "Variables"])
        .and_then(Value::as_mapping)
        .expect("environment variables")
        .iter()
        .map(|(key, value)| (key.as_str().expect("name").to_owned(), resolve(value)))
        .collect()
}

#[test]
fn every_function_starts_with_its_deployed_environment_and_the_ai_ones_use_bedrock() {
    use casebook_adapters::ai::{AiConfig, Provider};
    use casebook_adapters::config::Config;

    for bin in FUNCTIONS {
        let env = deployed_environment(resource(function_for(bin)));
        let config = Config::from_lookup(|name| env.get(name).cloned())
            .unwrap_or_else(|err| panic!("{bin} cannot read its configuration: {err}"));
        assert!(
            config.database.iam_auth,
            "{bin} signs its database password with IAM"
        );
    }
    let parameter = |name: &str| {
        section("Parameters")[name]["Default"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} has a default"))
            .to_owned()
    };
    for bin in ["worker", "projector"] {
        let env = deployed_environment(resource(function_for(bin)));
        let ai = AiConfig::from_lookup(|name| env.get(name).cloned())
            .unwrap_or_else(|err| panic!("{bin} cannot read its AI configuration: {err}"));
        assert_eq!(ai.provider, Provider::Bedrock, "{bin} runs on Bedrock");
        let models = &ai.bedrock.models;
        assert_eq!(models.triage, parameter("TriageModelId"), "{bin}");
        assert_eq!(models.standard, parameter("StandardModelId"), "{bin}");
        assert_eq!(models.strongest, parameter("StrongestModelId"), "{bin}");
        assert_eq!(
            models.open_weights,
            parameter("OpenWeightsModelId"),
            "{bin}"
        );
        assert_eq!(
            ai.bedrock.embedding_model,
            parameter("EmbeddingModelId"),
            "{bin}"
        );
    }
}

/// CloudFront's managed policies, by id.
const CACHING_OPTIMIZED: &str = "658327ea-f89d-4fab-a63d-7e88639e58f6";
const CACHING_DISABLED: &str = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad";
const ALL_VIEWER_EXCEPT_HOST_HEADER: &str = "b689b0a8-53d0-40ab-baf2-68738e2966ac";

fn distribution() -> &'static Value {
    prop(resource("Distribution"), &["DistributionConfig"]).expect("DistributionConfig")
}

/// The default behaviour: the web app, from the site bucket.
fn site_behaviour() -> &'static Value {
    &distribution()["DefaultCacheBehavior"]
}

/// The `/v1/*` behaviour: the API.
fn api_behaviour() -> &'static Value {
    distribution()["CacheBehaviors"]
        .as_sequence()
        .expect("CacheBehaviors")
        .iter()
        .find(|b| b["PathPattern"].as_str() == Some("/v1/*"))
        .expect("a /v1/* behaviour")
}

/// The origin a behaviour sends to.
fn origin_of(behaviour: &Value) -> &'static Value {
    let id = behaviour["TargetOriginId"]
        .as_str()
        .expect("TargetOriginId");
    distribution()["Origins"]
        .as_sequence()
        .expect("Origins")
        .iter()
        .find(|o| o["Id"].as_str() == Some(id))
        .unwrap_or_else(|| panic!("origin {id} is defined"))
}

/// The CloudFront Function a behaviour runs on viewer requests, if any.
fn viewer_request_function(behaviour: &Value) -> Option<&'static Value> {
    let associations = behaviour.get("FunctionAssociations")?.as_sequence()?;
    assert_eq!(associations.len(), 1, "one function: {associations:?}");
    assert_eq!(
        associations[0]["EventType"].as_str(),
        Some("viewer-request")
    );
    let id = target_of(&associations[0]["FunctionARN"]).expect("a function of the template");
    assert_eq!(type_of(&id), "AWS::CloudFront::Function");
    Some(resource(&id))
}

#[test]
fn the_distribution_serves_the_app_from_the_site_bucket_and_v1_from_the_api() {
    let config = distribution();
    assert_eq!(config["DefaultRootObject"].as_str(), Some("index.html"));
    assert!(
        config.get("CustomErrorResponses").is_none(),
        "no distribution-wide error pages: they would rewrite the API's errors under /v1/* too"
    );

    let site = site_behaviour();
    let origin = origin_of(site);
    assert_eq!(
        target_of(&origin["DomainName"]).as_deref(),
        Some("StaticSiteBucket")
    );
    let access = target_of(&origin["OriginAccessControlId"]).expect("origin access control");
    assert_eq!(type_of(&access), "AWS::CloudFront::OriginAccessControl");
    let access = prop(resource(&access), &["OriginAccessControlConfig"]).unwrap();
    assert_eq!(access["OriginAccessControlOriginType"].as_str(), Some("s3"));
    assert_eq!(access["SigningBehavior"].as_str(), Some("always"));
    assert_eq!(
        origin["S3OriginConfig"]["OriginAccessIdentity"].as_str(),
        Some(""),
        "no legacy origin access identity"
    );
    let (_, bucket_policy) = resources_of("AWS::S3::BucketPolicy")
        .into_iter()
        .find(|(_, p)| {
            target_of(prop(p, &["Bucket"]).unwrap()).as_deref() == Some("StaticSiteBucket")
        })
        .expect("the site bucket's policy");
    let statements = prop(bucket_policy, &["PolicyDocument", "Statement"])
        .and_then(Value::as_sequence)
        .unwrap();
    assert!(
        statements
            .iter()
            .any(|s| s["Effect"].as_str() == Some("Allow")
                && s["Principal"]["Service"].as_str() == Some("cloudfront.amazonaws.com")
                && s["Action"].as_str() == Some("s3:GetObject")
                && sub_text(&s["Condition"]["StringEquals"]["AWS:SourceArn"])
                    .ends_with(":distribution/${Distribution}")),
        "the site bucket lets this distribution read, and only it"
    );
    assert_eq!(
        site["CachePolicyId"].as_str(),
        Some(CACHING_OPTIMIZED),
        "the app's objects are cached as their Cache-Control says"
    );
    let spa = viewer_request_function(site).expect("the site runs the SPA function");
    assert_eq!(
        prop_str(spa, &["FunctionConfig", "Runtime"]),
        Some("cloudfront-js-2.0")
    );
    assert_eq!(
        prop(spa, &["AutoPublish"]).and_then(Value::as_bool),
        Some(true),
        "the association runs the published (LIVE) function"
    );
    assert!(site.get("LambdaFunctionAssociations").is_none());

    let api = api_behaviour();
    assert!(
        sub_text(&origin_of(api)["DomainName"]).starts_with("${RestApi}.execute-api."),
        "/v1/* goes to the REST API"
    );
    assert!(
        viewer_request_function(api).is_none() && api.get("LambdaFunctionAssociations").is_none(),
        "the API's requests and answers pass unchanged"
    );
    assert_eq!(
        api["CachePolicyId"].as_str(),
        Some(CACHING_DISABLED),
        "API answers are per tenant and per user"
    );
    assert_eq!(
        api["OriginRequestPolicyId"].as_str(),
        Some(ALL_VIEWER_EXCEPT_HOST_HEADER),
        "Authorization, the query and the body reach the API"
    );
    let methods: BTreeSet<&str> = api["AllowedMethods"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
        assert!(methods.contains(method), "/v1/* allows {method}");
    }
    assert_eq!(
        config["CacheBehaviors"].as_sequence().unwrap().len(),
        1,
        "the app and the API: nothing else"
    );
}

#[test]
fn the_spa_function_serves_index_html_for_paths_without_an_extension() {
    let spa = viewer_request_function(site_behaviour()).expect("the SPA function");
    let code = prop_str(spa, &["FunctionCode"]).expect("inline FunctionCode");
    // The last segment of the URI, and whether it has a '.': /review, /sessions/123 and /
    // have none and become /index.html; /assets/<hash>.js and /config.json keep theirs.
    for part in [
        "function handler(event)",
        "var request = event.request;",
        "request.uri.substring(request.uri.lastIndexOf('/') + 1)",
        "if (last.indexOf('.') === -1)",
        "request.uri = '/index.html';",
        "return request;",
    ] {
        assert!(code.contains(part), "the function has `{part}`:\n{code}");
    }
    assert_eq!(
        code.matches("request.uri =").count(),
        1,
        "it rewrites to /index.html and nothing else:\n{code}"
    );
}

/// A Content-Security-Policy as directive → sources.
fn csp_directives(policy: &str) -> BTreeMap<String, Vec<String>> {
    policy
        .split(';')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|directive| {
            let mut words = directive.split_whitespace();
            let name = words.next().unwrap().to_owned();
            (name, words.map(str::to_owned).collect())
        })
        .collect()
}

/// The CSP `casebook serve` sends with the app (`handlers/src/http/web.rs`), as written there,
/// with its `{connect}` placeholder (this origin, Cognito's and the uploads bucket's).
fn local_csp() -> String {
    let path = repo_root().join("handlers/src/http/web.rs");
    let source = std::fs::read_to_string(&path).expect("read handlers/src/http/web.rs");
    let start = source
        .find("\"default-src")
        .expect("web.rs spells its CSP as one string literal starting with default-src");
    let literal = &source[start + 1..];
    let literal = &literal[..literal.find('"').expect("the literal ends")];
    // Rust's `\` line continuation drops the line break and the next line's indentation.
    literal
        .split("\\\n")
        .map(str::trim_start)
        .collect::<String>()
}

#[test]
fn the_site_sends_the_local_servers_csp_with_the_deployed_origins() {
    let policy = target_of(&site_behaviour()["ResponseHeadersPolicyId"])
        .expect("the site's response headers policy");
    assert_eq!(type_of(&policy), "AWS::CloudFront::ResponseHeadersPolicy");
    let headers = prop(
        resource(&policy),
        &["ResponseHeadersPolicyConfig", "SecurityHeadersConfig"],
    )
    .unwrap();
    let csp = &headers["ContentSecurityPolicy"];
    assert_eq!(csp["Override"].as_bool(), Some(true));
    let deployed = csp_directives(sub_text(&csp["ContentSecurityPolicy"]));

    // The browser calls this origin (the API under /v1), Cognito's API in the stack's region
    // and the bucket the api function presigns uploads for, at its regional endpoint.
    let cognito = "https://cognito-idp.${AWS::Region}.amazonaws.com";
    let uploads_bucket = target_of(
        prop(
            resource(function_for("api")),
            &["Environment", "Variables", "UPLOADS_BUCKET"],
        )
        .expect("the api function presigns uploads"),
    );
    assert_eq!(uploads_bucket.as_deref(), Some("UploadsBucket"));
    let bucket_name = sub_text(prop(resource("UploadsBucket"), &["BucketName"]).unwrap());
    let uploads = format!("https://{bucket_name}.s3.${{AWS::Region}}.amazonaws.com");
    assert_eq!(
        deployed["connect-src"],
        ["'self'", cognito, uploads.as_str()],
        "the app calls itself, Cognito and the uploads bucket, nothing else"
    );
    assert_eq!(deployed["frame-ancestors"], ["'none'"]);
    for (directive, sources) in &deployed {
        for source in sources {
            assert!(
                !source.contains('*') && !source.starts_with("'unsafe-"),
                "{directive} {source}"
            );
        }
    }
    // The same policy as `casebook serve`'s, origin for origin.
    let local = local_csp().replace("{connect}", &format!("'self' {cognito} {uploads}"));
    assert_eq!(deployed, csp_directives(&local), "web.rs: {local}");

    assert_eq!(
        headers["ContentTypeOptions"]["Override"].as_bool(),
        Some(true)
    );
    assert_eq!(
        headers["FrameOptions"]["FrameOption"].as_str(),
        Some("DENY")
    );
    let hsts = &headers["StrictTransportSecurity"]["AccessControlMaxAgeSec"];
    assert!(
        hsts.as_u64().unwrap_or(0) >= 31_536_000,
        "HSTS for a year or more"
    );
}

#[test]
fn every_output_the_deploy_steps_read_exists() {
    let readme =
        std::fs::read_to_string(repo_root().join("infra/README.md")).expect("read infra/README.md");
    let read: BTreeSet<&str> = readme
        .match_indices("$(out ")
        .map(|(at, marker)| {
            let rest = &readme[at + marker.len()..];
            let end = rest
                .find(|c: char| !c.is_ascii_alphanumeric())
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect();
    let outputs = section("Outputs");
    for name in &read {
        assert!(
            outputs.contains_key(*name),
            "infra/README.md reads output {name}"
        );
    }
    // Publishing the web app: where it goes, what to invalidate, and its config.json.
    for (name, target) in [
        ("StaticSiteBucketName", "StaticSiteBucket"),
        ("DistributionId", "Distribution"),
        ("UserPoolClientId", "UserPoolClient"),
        ("Region", "AWS::Region"),
    ] {
        assert!(read.contains(name), "the deploy steps read {name}");
        assert_eq!(
            target_of(&outputs[name]["Value"]).as_deref(),
            Some(target),
            "{name}"
        );
    }
}

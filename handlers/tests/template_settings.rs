//! Each Lambda function of `infra/template.yaml` starts with the environment the template
//! gives it: its variables, read by the same [`Settings::from_lookup`] the function runs, are
//! complete and valid. A variable a binary starts requiring fails here, before a deployment
//! fails its first invocation.

use std::collections::BTreeMap;
use std::path::Path;

use casebook_handlers::settings::{Process, Settings};
use serde_yaml::value::TaggedValue;
use serde_yaml::Value;

fn template() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml");
    serde_yaml::from_str(&std::fs::read_to_string(path).expect("the template")).expect("YAML")
}

/// A parameter's default, or a stand-in named after what the template refers to: the value
/// an intrinsic function takes once deployed is unknown here, only that there is one.
fn resolve(template: &Value, value: &Value) -> String {
    let parameter_default = |name: &str| {
        template["Parameters"][name]["Default"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| {
                template["Parameters"][name]["Default"]
                    .as_i64()
                    .map(|n| n.to_string())
            })
    };
    match value {
        Value::String(text) => text.clone(),
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) => number.to_string(),
        Value::Tagged(tagged) => {
            let TaggedValue { tag, value } = tagged.as_ref();
            let text = value.as_str().unwrap_or_default();
            if tag == "!Ref" {
                parameter_default(text).unwrap_or_else(|| format!("{text}-deployed"))
            } else if tag == "!GetAtt" {
                format!("https://{}.example", text.replace('.', "-").to_lowercase())
            } else if tag == "!Sub" {
                let mut out = String::new();
                let mut rest = text;
                while let Some(start) = rest.find("${") {
                    out.push_str(&rest[..start]);
                    let end = rest[start..].find('}').expect("a closed ${}") + start;
                    let name = &rest[start + 2..end];
                    out.push_str(&parameter_default(name).unwrap_or_else(|| "deployed".into()));
                    rest = &rest[end + 1..];
                }
                out + rest
            } else {
                panic!("an environment variable of an unexpected form: {tag} {value:?}")
            }
        }
        other => panic!("an environment variable of an unexpected form: {other:?}"),
    }
}

/// The function running `binary`, and its environment as deployed.
fn environment(template: &Value, binary: &str) -> BTreeMap<String, String> {
    let resources = template["Resources"].as_mapping().expect("resources");
    let function = resources
        .values()
        .find(|resource| {
            resource["Type"] == "AWS::Serverless::Function"
                && resource["Properties"]["CodeUri"]
                    .as_str()
                    .is_some_and(|uri| uri.trim_end_matches('/').ends_with(&format!("/{binary}")))
        })
        .unwrap_or_else(|| panic!("a function runs {binary}"));
    let mut variables: BTreeMap<String, String> = function["Properties"]["Environment"]
        ["Variables"]
        .as_mapping()
        .expect("environment variables")
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().expect("a variable name").to_owned(),
                resolve(template, value),
            )
        })
        .collect();
    // What Lambda sets in every function's environment.
    variables.insert("AWS_LAMBDA_RUNTIME_API".into(), "127.0.0.1:9001".into());
    variables
}

#[test]
fn every_function_starts_with_the_environment_the_template_gives_it() {
    let template = template();
    for (binary, process) in [
        ("api", Process::Api),
        ("authorizer", Process::Authorizer),
        ("projector", Process::Projector),
        ("worker", Process::Worker),
        ("scheduler", Process::Scheduler),
    ] {
        let variables = environment(&template, binary);
        assert_eq!(
            variables.get("CASEBOOK_ENV").map(String::as_str),
            Some("aws")
        );
        if let Err(err) = Settings::from_lookup(process, |name| variables.get(name).cloned()) {
            panic!("{binary} would not start as deployed: {err}\n{variables:#?}");
        }
    }
}

/// Every job the scheduler function runs has an EventBridge schedule that invokes it with
/// that job: a job added to the code without one would never run deployed.
#[test]
fn every_job_has_a_schedule_that_invokes_the_scheduler_with_it() {
    let template = template();
    let resources = template["Resources"].as_mapping().expect("resources");
    let scheduled: Vec<String> = resources
        .values()
        .filter(|resource| resource["Type"] == "AWS::Scheduler::Schedule")
        .filter(|schedule| {
            let Value::Tagged(arn) = &schedule["Properties"]["Target"]["Arn"] else {
                return false;
            };
            arn.value.as_str() == Some("SchedulerFunction.Arn")
        })
        .map(|schedule| {
            let input: serde_json::Value = serde_json::from_str(
                schedule["Properties"]["Target"]["Input"]
                    .as_str()
                    .expect("an input"),
            )
            .expect("JSON input");
            input["job"].as_str().expect("a job").to_owned()
        })
        .collect();
    for job in casebook_handlers::jobs::Job::ALL {
        assert!(
            scheduled.iter().any(|name| name == job.name()),
            "{} has no schedule: {scheduled:?}",
            job.name()
        );
    }
}

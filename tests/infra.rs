//! The deployment descriptions agree with the code: infra/template.yaml routes every API route
//! to the function that serves it, feeds every queue to an existing function, sets every
//! variable the functions need, and grants only on its own resources; infra/openapi.yaml
//! documents exactly the routes and parameters the handlers accept.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_norway::Value;
use teleapi_api::{Operation, ROUTES};
use teleapi_runtime::config::{FUNCTIONS, OPTIONAL_ENV, required_env};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn load(path: &str) -> Value {
    let text = std::fs::read_to_string(root().join(path)).unwrap();
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn get<'a>(value: &'a Value, key: &str) -> &'a Value {
    value.get(key).unwrap_or(&Value::Null)
}

fn str_of(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

/// The functions of the template: logical id -> (binary, resource).
fn functions(template: &Value) -> BTreeMap<String, (String, Value)> {
    let mut out = BTreeMap::new();
    for (id, resource) in get(template, "Resources").as_mapping().unwrap() {
        if str_of(get(resource, "Type")) == "AWS::Serverless::Function" {
            let binary = str_of(get(
                get(get(resource, "Metadata"), "BuildProperties"),
                "Binary",
            ));
            out.insert(str_of(id).to_owned(), (binary.to_owned(), resource.clone()));
        }
    }
    out
}

/// The names a `!Ref`, `!GetAtt` or `!Sub` refers to.
fn references(value: &Value) -> Vec<String> {
    match value {
        Value::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let inner = str_of(&tagged.value);
            match tag.as_str() {
                "!Ref" => vec![inner.to_owned()],
                "!GetAtt" => vec![inner.split('.').next().unwrap_or_default().to_owned()],
                "!Sub" => inner
                    .split("${")
                    .skip(1)
                    .filter_map(|part| part.split('}').next())
                    .map(|name| name.split('.').next().unwrap_or_default().to_owned())
                    .filter(|name| !name.starts_with("AWS::"))
                    .collect(),
                _ => Vec::new(),
            }
        }
        Value::Sequence(items) => items.iter().flat_map(references).collect(),
        Value::Mapping(map) => map.values().flat_map(references).collect(),
        _ => Vec::new(),
    }
}

#[test]
fn every_function_is_a_crate_and_every_crate_a_function() {
    let template = load("infra/template.yaml");
    let binaries: BTreeSet<String> = functions(&template)
        .values()
        .map(|(b, _)| b.clone())
        .collect();
    let crates: BTreeSet<String> = std::fs::read_dir(root().join("functions"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let declared: BTreeSet<String> = FUNCTIONS.iter().map(|f| (*f).to_owned()).collect();
    assert_eq!(binaries, crates, "template functions vs functions/ crates");
    assert_eq!(
        binaries, declared,
        "template functions vs teleapi_runtime::config::FUNCTIONS"
    );
    for binary in &binaries {
        let manifest =
            std::fs::read_to_string(root().join("functions").join(binary).join("Cargo.toml"))
                .unwrap();
        assert!(
            manifest.contains(&format!("name = \"{binary}\"")),
            "{binary}'s crate is named {binary}"
        );
    }
}

#[test]
fn every_route_reaches_the_function_that_serves_it() {
    let template = load("infra/template.yaml");
    let mut declared = BTreeSet::new();
    for (id, (binary, resource)) in functions(&template) {
        let events = get(get(&resource, "Properties"), "Events")
            .as_mapping()
            .cloned()
            .unwrap_or_default();
        for (name, event) in events {
            let properties = get(&event, "Properties");
            match str_of(get(&event, "Type")) {
                "Api" => {
                    let (method, path) = (
                        str_of(get(properties, "Method")),
                        str_of(get(properties, "Path")),
                    );
                    let (_, _, operation) = ROUTES
                        .iter()
                        .find(|(m, p, _)| *m == method && *p == path)
                        .unwrap_or_else(|| {
                            panic!(
                                "{id}.{}: {method} {path} is not a route of the API",
                                str_of(&name)
                            )
                        });
                    assert_eq!(
                        operation.function(),
                        binary,
                        "{method} {path} is served by {}",
                        operation.function()
                    );
                    assert!(references(get(properties, "RestApiId")).contains(&"Api".to_owned()));
                    declared.insert((method.to_owned(), path.to_owned()));
                }
                "SQS" => {
                    let queue = references(get(properties, "Queue"));
                    let resources = get(&template, "Resources");
                    assert!(
                        queue.iter().all(|q| resources.get(q.as_str()).is_some()),
                        "{id}: {queue:?}"
                    );
                    assert_eq!(
                        get(properties, "FunctionResponseTypes"),
                        &serde_norway::from_str::<Value>("[ReportBatchItemFailures]").unwrap(),
                        "{id}"
                    );
                    assert!(
                        get(get(properties, "ScalingConfig"), "MaximumConcurrency")
                            .as_u64()
                            .is_some(),
                        "{id}: bounded concurrency"
                    );
                }
                "ScheduleV2" => assert_eq!(binary, "reconcile-intents"),
                other => panic!("{id}: unexpected event type {other}"),
            }
        }
    }
    let routes: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(
        declared, routes,
        "the template declares exactly the API's routes"
    );
}

/// Every request is counted against its account's usage plan before a function runs: the API's
/// default authorizer names the account's API key, every route requires one, and API Gateway's
/// own refusals (429 above all) are in the API's error shape.
#[test]
fn every_request_is_counted_against_its_accounts_rate_limit() {
    let template = load("infra/template.yaml");
    let api = get(get(&template, "Resources"), "Api");
    assert_eq!(str_of(get(api, "Type")), "AWS::Serverless::Api");
    let properties = get(api, "Properties");
    assert_eq!(str_of(get(properties, "ApiKeySourceType")), "AUTHORIZER");
    let auth = get(properties, "Auth");
    assert_eq!(get(auth, "ApiKeyRequired").as_bool(), Some(true));
    let name = str_of(get(auth, "DefaultAuthorizer"));
    let authorizer = get(get(auth, "Authorizers"), name);
    assert_eq!(
        references(get(authorizer, "FunctionArn")),
        ["AuthorizeAccountFunction"]
    );
    assert_eq!(str_of(get(authorizer, "FunctionPayloadType")), "REQUEST");
    let identity = get(authorizer, "Identity");
    assert_eq!(
        get(identity, "Headers"),
        &serde_norway::from_str::<Value>("[Authorization]").unwrap()
    );
    let cached = get(identity, "ReauthorizeEvery").as_u64().unwrap();
    assert!(cached > 0, "cached");
    // A key of the pool is lent for longer than the answer that names it may be cached.
    assert!(
        cached + 60 <= teleapi_ports::key_pool::LEASE.as_secs(),
        "ReauthorizeEvery {cached} s against a loan of {:?}",
        teleapi_ports::key_pool::LEASE
    );
    // Accounts that find no key free are counted, by the message the authorizer logs.
    let filter = get(
        get(get(&template, "Resources"), "KeyPoolExhaustedMetric"),
        "Properties",
    );
    assert_eq!(
        references(get(filter, "LogGroupName")),
        ["AuthorizeAccountLogs"]
    );
    let pattern = str_of(get(filter, "FilterPattern"));
    let message = pattern
        .split('"')
        .nth(1)
        .expect("the pattern names a message");
    assert!(
        include_str!("../shared/api/src/authorizer.rs").contains(&format!("\"{message}\"")),
        "{pattern}"
    );

    let responses = get(properties, "GatewayResponses");
    for kind in ["THROTTLED", "QUOTA_EXCEEDED"] {
        let response = get(responses, kind);
        assert_eq!(get(response, "StatusCode").as_u64(), Some(429), "{kind}");
        assert!(
            !str_of(get(
                get(get(response, "ResponseParameters"), "Headers"),
                "Retry-After"
            ))
            .is_empty(),
            "{kind}"
        );
        let body: serde_json::Value = serde_json::from_str(str_of(get(
            get(response, "ResponseTemplates"),
            "application/json",
        )))
        .unwrap();
        assert_eq!(body["code"], 20429, "{kind}");
        assert_eq!(body["status"], 429, "{kind}");
    }
    let unauthorized = get(responses, "UNAUTHORIZED");
    assert_eq!(get(unauthorized, "StatusCode").as_u64(), Some(401));
    assert!(
        str_of(get(
            get(get(unauthorized, "ResponseParameters"), "Headers"),
            "WWW-Authenticate"
        ))
        .contains("Basic")
    );

    // The default plan is the default rate limit the local stack enforces too.
    let parameters = get(&template, "Parameters");
    let default = teleapi_domain::RateLimit::DEFAULT;
    assert_eq!(
        get(get(parameters, "AccountRateLimit"), "Default").as_u64(),
        Some(u64::from(default.per_second))
    );
    assert_eq!(
        get(get(parameters, "AccountBurstLimit"), "Default").as_u64(),
        Some(u64::from(default.burst))
    );
    let plan = get(
        get(get(&template, "Resources"), "DefaultUsagePlan"),
        "Properties",
    );
    assert_eq!(
        references(get(get(plan, "Throttle"), "RateLimit")),
        ["AccountRateLimit"]
    );

    // The authorizer names the shared keys the template creates.
    let functions = functions(&template);
    let variables = get(
        get(
            get(&functions["AuthorizeAccountFunction"].1, "Properties"),
            "Environment",
        ),
        "Variables",
    );
    for (variable, key) in [
        (
            teleapi_runtime::config::UNAUTHENTICATED_KEY_ENV,
            "UnauthenticatedKey",
        ),
        (
            teleapi_runtime::config::UNASSIGNED_KEY_ENV,
            "UnassignedAccountsKey",
        ),
    ] {
        let value = get(
            get(get(get(&template, "Resources"), key), "Properties"),
            "Value",
        );
        assert_eq!(get(variables, variable), value, "{variable}");
    }
}

/// Every FIFO queue is in high-throughput mode: a FIFO queue in the default mode takes 300 sends
/// a second, which would cap the whole deployment (docs/capacity.md).
#[test]
fn every_fifo_queue_is_high_throughput() {
    let template = load("infra/template.yaml");
    let resources = get(&template, "Resources").as_mapping().unwrap();
    let mut fifo = Vec::new();
    for (id, resource) in resources {
        if str_of(get(resource, "Type")) != "AWS::SQS::Queue" {
            continue;
        }
        let properties = get(resource, "Properties");
        if properties.get("FifoQueue").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        let id = str_of(id);
        assert_eq!(
            str_of(get(properties, "DeduplicationScope")),
            "messageGroup",
            "{id}"
        );
        assert_eq!(
            str_of(get(properties, "FifoThroughputLimit")),
            "perMessageGroupId",
            "{id}"
        );
        fifo.push(id.to_owned());
    }
    assert_eq!(
        fifo.len(),
        4,
        "commands, events and their dead-letter queues: {fifo:?}"
    );
}

#[test]
fn every_variable_a_function_needs_is_set() {
    let template = load("infra/template.yaml");
    let globals = get(
        get(get(get(&template, "Globals"), "Function"), "Environment"),
        "Variables",
    );
    for (id, (binary, resource)) in functions(&template) {
        let own = get(
            get(get(&resource, "Properties"), "Environment"),
            "Variables",
        );
        for name in required_env(&binary) {
            assert!(
                globals.get(name).is_some() || own.get(name).is_some(),
                "{id} ({binary}) needs {name}"
            );
        }
    }
    // Every TELEAPI_ variable the shared code reads is required by some function or optional.
    let mut read = BTreeSet::new();
    for file in [
        "shared/runtime/src/config.rs",
        "shared/adapters/src/dynamodb/schema.rs",
    ] {
        let text = std::fs::read_to_string(root().join(file)).unwrap();
        for part in text
            .split('"')
            .filter(|p| p.starts_with("TELEAPI_") && !p.contains(' '))
        {
            read.insert(part.to_owned());
        }
    }
    let known: BTreeSet<String> = FUNCTIONS
        .iter()
        .flat_map(|f| required_env(f))
        .chain(OPTIONAL_ENV)
        .map(str::to_owned)
        .collect();
    for name in read {
        assert!(
            known.contains(&name),
            "{name} is read but neither required nor optional"
        );
    }
}

#[test]
fn every_grant_names_a_resource_of_the_template() {
    let template = load("infra/template.yaml");
    let resources = get(&template, "Resources");
    let parameters = get(&template, "Parameters");
    for (id, (_, resource)) in functions(&template) {
        let policies = get(get(&resource, "Properties"), "Policies")
            .as_sequence()
            .cloned()
            .unwrap_or_default();
        assert!(!policies.is_empty(), "{id} has its own policy");
        for policy in policies {
            for statement in get(&policy, "Statement").as_sequence().unwrap() {
                let actions = get(statement, "Action").as_sequence().unwrap();
                for action in actions {
                    let action = str_of(action);
                    assert!(!action.contains('*'), "{id}: wildcard action {action}");
                }
                let targets = get(statement, "Resource");
                let names = references(targets);
                assert!(
                    !names.is_empty(),
                    "{id}: every statement names its resources: {targets:?}"
                );
                for name in names {
                    assert!(
                        resources.get(name.as_str()).is_some()
                            || parameters.get(name.as_str()).is_some(),
                        "{id}: {name} is not a resource of the template"
                    );
                }
                if let Value::Sequence(items) = targets {
                    assert!(
                        items
                            .iter()
                            .all(|t| !matches!(t, Value::String(s) if s.contains('*'))),
                        "{id}: a bare wildcard resource"
                    );
                }
            }
        }
    }
}

/// The operations of a path item of the OpenAPI document, resolving `$ref`.
fn path_item<'a>(doc: &'a Value, item: &'a Value) -> &'a Value {
    match item.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let name = reference.rsplit('/').next().unwrap();
            get(get(get(doc, "components"), "pathItems"), name)
        }
        None => item,
    }
}

fn form_properties(doc: &Value, operation: &Value) -> BTreeSet<String> {
    let schema = get(
        get(
            get(get(operation, "requestBody"), "content"),
            "application/x-www-form-urlencoded",
        ),
        "schema",
    );
    let name = str_of(get(schema, "$ref"))
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    get(
        get(get(get(doc, "components"), "schemas"), &name),
        "properties",
    )
    .as_mapping()
    .unwrap()
    .keys()
    .map(|k| str_of(k).to_owned())
    .collect()
}

fn query_parameters(doc: &Value, operation: &Value) -> BTreeSet<String> {
    get(operation, "parameters")
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|p| match p.get("$ref").and_then(Value::as_str) {
            Some(reference) => get(
                get(get(doc, "components"), "parameters"),
                reference.rsplit('/').next().unwrap(),
            ),
            None => p,
        })
        .filter(|p| str_of(get(p, "in")) == "query")
        .map(|p| str_of(get(p, "name")).to_owned())
        .collect()
}

#[test]
fn the_openapi_document_matches_the_handlers() {
    let doc = load("infra/openapi.yaml");
    assert_eq!(str_of(get(&doc, "openapi")), "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, item) in get(&doc, "paths").as_mapping().unwrap() {
        let item = path_item(&doc, item);
        // API Gateway matches `{CallSid}.json` with `{CallSid}`: fold it back.
        let route_path = str_of(path)
            .replace("{CallSid}.json", "{CallSid}")
            .replace("{ConferenceSid}.json", "{ConferenceSid}")
            .replace("{RecordingSid}.json", "{RecordingSid}")
            .replace("{StreamSid}.json", "{StreamSid}")
            .replace("{NotificationSid}.json", "{NotificationSid}")
            .replace("{PhoneNumberSid}.json", "{PhoneNumberSid}")
            .replace("{QueueSid}.json", "{QueueSid}");
        for method in ["get", "post", "put", "patch", "delete"] {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let method = method.to_uppercase();
            let (_, _, op) = ROUTES
                .iter()
                .find(|(m, p, _)| *m == method && *p == route_path)
                .unwrap_or_else(|| panic!("{method} {} is not a route of the API", str_of(path)));
            documented.insert((method.clone(), route_path.clone()));
            match op {
                Operation::ModifyCall => {
                    let expected: BTreeSet<String> = teleapi_domain::call::MODIFY_PARAMETERS
                        .iter()
                        .map(|p| (*p).to_owned())
                        .collect();
                    assert_eq!(
                        form_properties(&doc, operation),
                        expected,
                        "modify-call form"
                    );
                }
                Operation::CreateCall => {
                    let expected: BTreeSet<String> = teleapi_domain::call::CREATE_PARAMETERS
                        .iter()
                        .map(|p| (*p).to_owned())
                        .collect();
                    assert_eq!(
                        form_properties(&doc, operation),
                        expected,
                        "create-call form"
                    );
                }
                Operation::ListCalls => {
                    let expected: BTreeSet<String> = teleapi_domain::call::CALL_FILTERS
                        .iter()
                        .chain(&teleapi_domain::paging::Paging::PARAMETERS)
                        .map(|p| (*p).to_owned())
                        .collect();
                    assert_eq!(
                        query_parameters(&doc, operation),
                        expected,
                        "list-calls query"
                    );
                }
                Operation::ListModifications => {
                    let expected: BTreeSet<String> = teleapi_domain::paging::Paging::PARAMETERS
                        .iter()
                        .map(|p| (*p).to_owned())
                        .collect();
                    assert_eq!(
                        query_parameters(&doc, operation),
                        expected,
                        "Modifications query"
                    );
                }
                Operation::ListConferences | Operation::ListParticipants => {
                    let filters: &[&str] = if *op == Operation::ListConferences {
                        &teleapi_domain::conference::CONFERENCE_FILTERS
                    } else {
                        &teleapi_domain::conference::PARTICIPANT_FILTERS
                    };
                    let expected: BTreeSet<String> = filters
                        .iter()
                        .chain(&teleapi_domain::paging::Paging::PARAMETERS)
                        .map(|p| (*p).to_owned())
                        .collect();
                    assert_eq!(query_parameters(&doc, operation), expected, "{op:?} query");
                }
                Operation::ModifyConference
                | Operation::ModifyParticipant
                | Operation::AddParticipant => {
                    use teleapi_domain::conference as c;
                    let parameters: &[&str] = match op {
                        Operation::ModifyConference => &c::CONFERENCE_PARAMETERS,
                        Operation::ModifyParticipant => &c::PARTICIPANT_PARAMETERS,
                        _ => &c::ADD_PARTICIPANT_PARAMETERS,
                    };
                    let expected: BTreeSet<String> =
                        parameters.iter().map(|p| (*p).to_owned()).collect();
                    assert_eq!(form_properties(&doc, operation), expected, "{op:?} form");
                }
                Operation::ListConferenceModifications => {
                    let expected: BTreeSet<String> = teleapi_domain::paging::Paging::PARAMETERS
                        .iter()
                        .map(|p| (*p).to_owned())
                        .collect();
                    assert_eq!(query_parameters(&doc, operation), expected, "{op:?} query");
                }
                Operation::StartRecording | Operation::UpdateRecording => {
                    use teleapi_domain::recording as r;
                    let parameters: &[&str] = match op {
                        Operation::StartRecording => &r::RECORDING_PARAMETERS,
                        _ => &r::RECORDING_UPDATE_PARAMETERS,
                    };
                    let expected: BTreeSet<String> =
                        parameters.iter().map(|p| (*p).to_owned()).collect();
                    assert_eq!(form_properties(&doc, operation), expected, "{op:?} form");
                }
                Operation::StartStream | Operation::StopStream => {
                    // The numbered custom parameters (`Parameter1.Name` …) are a pattern of the
                    // form, not properties of their own.
                    let parameters: &[&str] = match op {
                        Operation::StartStream => &teleapi_domain::stream::STREAM_PARAMETERS,
                        _ => &["Status"],
                    };
                    let expected: BTreeSet<String> =
                        parameters.iter().map(|p| (*p).to_owned()).collect();
                    assert_eq!(form_properties(&doc, operation), expected, "{op:?} form");
                }
                Operation::ListRecordings => {
                    // The account's list filters by call; a call's list is the call's.
                    let under_call = route_path.contains("{CallSid}");
                    let expected: BTreeSet<String> = teleapi_domain::recording::RECORDING_FILTERS
                        .iter()
                        .filter(|f| !under_call || **f != "CallSid")
                        .chain(&teleapi_domain::paging::Paging::PARAMETERS)
                        .map(|p| (*p).to_owned())
                        .collect();
                    assert_eq!(query_parameters(&doc, operation), expected, "{op:?} query");
                }
                Operation::ListCallEvents => {
                    let expected: BTreeSet<String> = teleapi_domain::paging::Paging::PARAMETERS
                        .iter()
                        .map(|p| (*p).to_owned())
                        .collect();
                    assert_eq!(query_parameters(&doc, operation), expected, "{op:?} query");
                }
                Operation::ListNotifications => {
                    let expected: BTreeSet<String> = teleapi_domain::call_log::NOTIFICATION_FILTERS
                        .iter()
                        .chain(&teleapi_domain::paging::Paging::PARAMETERS)
                        .map(|p| (*p).to_owned())
                        .collect();
                    assert_eq!(query_parameters(&doc, operation), expected, "{op:?} query");
                }
                Operation::CreateNumber | Operation::UpdateNumber => {
                    let mut expected: BTreeSet<String> = teleapi_domain::number::NUMBER_SETTINGS
                        .iter()
                        .map(|p| (*p).to_owned())
                        .collect();
                    if *op == Operation::CreateNumber {
                        expected.insert("PhoneNumber".into());
                    }
                    assert_eq!(form_properties(&doc, operation), expected, "{op:?} form");
                }
                Operation::ListNumbers => {
                    let expected: BTreeSet<String> = teleapi_domain::number::NUMBER_FILTERS
                        .iter()
                        .chain(&teleapi_domain::paging::Paging::PARAMETERS)
                        .map(|p| (*p).to_owned())
                        .collect();
                    assert_eq!(query_parameters(&doc, operation), expected, "{op:?} query");
                }
                Operation::CreateQueue | Operation::UpdateQueue => {
                    let expected: BTreeSet<String> = teleapi_domain::queue::QUEUE_PARAMETERS
                        .iter()
                        .map(|p| (*p).to_owned())
                        .collect();
                    assert_eq!(form_properties(&doc, operation), expected, "{op:?} form");
                }
                Operation::DequeueMember => {
                    let expected: BTreeSet<String> =
                        ["Url", "Method"].iter().map(|p| (*p).to_owned()).collect();
                    assert_eq!(form_properties(&doc, operation), expected, "{op:?} form");
                }
                Operation::ListQueues | Operation::ListMembers => {
                    let expected: BTreeSet<String> = teleapi_domain::paging::Paging::PARAMETERS
                        .iter()
                        .map(|p| (*p).to_owned())
                        .collect();
                    assert_eq!(query_parameters(&doc, operation), expected, "{op:?} query");
                }
                Operation::GetQueue
                | Operation::DeleteQueue
                | Operation::GetMember
                | Operation::GetNumber
                | Operation::DeleteNumber
                | Operation::GetCall
                | Operation::GetNotification
                | Operation::GetConference
                | Operation::GetParticipant
                | Operation::RemoveParticipant
                | Operation::GetRecording
                | Operation::DeleteRecording => {
                    assert!(query_parameters(&doc, operation).is_empty())
                }
            }
        }
    }
    let routes: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(
        documented, routes,
        "the document describes exactly the API's routes"
    );
    // The error codes the handlers answer with are documented statuses of the operations.
    let statuses = ["400", "401", "403", "404", "503"];
    for (_, item) in get(get(&doc, "components"), "pathItems")
        .as_mapping()
        .unwrap()
    {
        for (_, operation) in item
            .as_mapping()
            .unwrap()
            .iter()
            .filter(|(k, _)| str_of(k) != "parameters")
        {
            let responses = get(operation, "responses");
            for status in &statuses[1..] {
                assert!(
                    responses.get(*status).is_some(),
                    "every operation documents {status}"
                );
            }
        }
    }
}

/// The media workers' fleet (infra/media.yaml): its role grants exactly what a worker does
/// (README "Media workers"), each on the one resource it needs, and its worker is configured
/// with every variable `teleapi-media` requires.
#[test]
fn the_media_fleet_grants_least_privilege() {
    let template = load("infra/media.yaml");
    let role = get(
        get(template.get("Resources").unwrap(), "WorkerRole"),
        "Properties",
    );
    let statements = get(
        get(&get(role, "Policies")[0], "PolicyDocument"),
        "Statement",
    )
    .as_sequence()
    .unwrap();
    let mut granted = BTreeMap::new();
    for statement in statements {
        assert_eq!(str_of(get(statement, "Effect")), "Allow");
        let actions: BTreeSet<String> = match get(statement, "Action") {
            Value::Sequence(all) => all.iter().map(|a| str_of(a).to_owned()).collect(),
            one => BTreeSet::from([str_of(one).to_owned()]),
        };
        let resource = get(statement, "Resource");
        assert!(
            !matches!(resource, Value::String(s) if s == "*"),
            "{actions:?} on every resource"
        );
        granted.insert(str_of(get(statement, "Sid")).to_owned(), actions);
    }
    let expected: BTreeMap<String, BTreeSet<String>> = [
        (
            "OwnQueue",
            &[
                "sqs:CreateQueue",
                "sqs:GetQueueUrl",
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:ChangeMessageVisibility",
            ][..],
        ),
        (
            "SharedQueue",
            &[
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:ChangeMessageVisibility",
            ],
        ),
        ("Events", &["sqs:SendMessage"]),
        ("Accounts", &["dynamodb:GetItem"]),
        ("Numbers", &["dynamodb:GetItem"]),
        ("Queues", &["dynamodb:GetItem"]),
        ("QueueMembers", &["dynamodb:Query"]),
        ("Recordings", &["s3:PutObject"]),
        ("Program", &["s3:GetObject"]),
        ("Drained", &["autoscaling:CompleteLifecycleAction"]),
    ]
    .into_iter()
    .map(|(sid, actions)| {
        (
            sid.to_owned(),
            actions.iter().map(|a| (*a).to_owned()).collect(),
        )
    })
    .collect();
    assert_eq!(granted, expected);

    let user_data = serde_norway::to_string(get(
        get(
            get(
                get(template.get("Resources").unwrap(), "WorkerLaunchTemplate"),
                "Properties",
            ),
            "LaunchTemplateData",
        ),
        "UserData",
    ))
    .unwrap();
    for variable in [
        teleapi_media::deploy::COMMANDS_QUEUE_ENV,
        teleapi_media::deploy::EVENTS_QUEUE_ENV,
        teleapi_media::deploy::ACCOUNTS_TABLE_ENV,
        teleapi_media::deploy::NUMBERS_TABLE_ENV,
        teleapi_media::deploy::QUEUES_TABLE_ENV,
        teleapi_media::deploy::CALLS_TABLE_ENV,
        teleapi_media::deploy::RECORDINGS_BUCKET_ENV,
        teleapi_media::deploy::WORKER_QUEUE_PREFIX_ENV,
        teleapi_media::deploy::SIP_ALLOW_ENV,
        teleapi_media::deploy::PUBLIC_ADDR_ENV,
        teleapi_media::deploy::RTP_PORTS_ENV,
        teleapi_media::deploy::BRIDGE_ADDR_ENV,
    ] {
        assert!(
            user_data.contains(&format!("{variable}=")),
            "{variable} is not set"
        );
    }
}

//! A metering proxy in front of moto: every DynamoDB and SQS request of the code under test goes
//! through it, is forwarded unchanged, and is recorded with what AWS would bill for it. DynamoDB
//! capacity is computed from the items themselves ([`super::units`]): before a write the proxy
//! reads the items it touches, after it reads them again, and charges the larger of the two, for
//! the table and for every index whose entry changed; a Query is charged for every entry it
//! evaluated, which the proxy learns by running it again without its filter. SQS requests are
//! counted per 64 KB of payload. The proxy's own reads go straight to moto and are not counted.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;

use super::units::{IndexShape, item_size, read_units, write_units};

/// One request as AWS would bill it.
#[derive(Debug, Clone, PartialEq)]
pub struct Billed {
    /// `dynamodb` or `sqs`.
    pub service: &'static str,
    /// `PutItem`, `SendMessage`, …
    pub action: String,
    /// Read and write units by table or `table/index` (logical names: `calls`, `calls/listed`).
    pub read_units: BTreeMap<String, f64>,
    pub write_units: BTreeMap<String, f64>,
    /// SQS: the queue (logical name) and the billed requests (one per 64 KB of payload).
    pub queue: Option<String>,
    pub sqs_requests: u64,
    /// DynamoDB: the size in bytes of every item written (the table's, not the index entries).
    pub items_written: Vec<(String, u64)>,
}

#[derive(Clone)]
struct Table {
    keys: Vec<String>,
    indexes: Vec<IndexShape>,
}

struct Inner {
    upstream: String,
    http: reqwest::Client,
    /// Table and queue names carry a random prefix; logical names drop it.
    prefix: Mutex<String>,
    tables: Mutex<HashMap<String, Table>>,
    billed: Mutex<Vec<Billed>>,
}

/// The proxy, serving on a free loopback port until dropped with its runtime.
#[derive(Clone)]
pub struct Meter {
    inner: Arc<Inner>,
    endpoint: String,
}

impl Meter {
    pub async fn start(upstream: &str) -> Self {
        let inner = Arc::new(Inner {
            upstream: upstream.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            prefix: Mutex::new(String::new()),
            tables: Mutex::default(),
            billed: Mutex::default(),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(inner.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { inner, endpoint }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Names starting with `prefix-` are reported without it.
    pub fn set_prefix(&self, prefix: &str) {
        *self.inner.prefix.lock().unwrap() = format!("{prefix}-");
    }

    /// What was billed since the last call.
    pub fn take(&self) -> Vec<Billed> {
        std::mem::take(&mut *self.inner.billed.lock().unwrap())
    }
}

impl Inner {
    fn logical(&self, name: &str) -> String {
        let prefix = self.prefix.lock().unwrap().clone();
        let name = name.rsplit('/').next().unwrap_or(name);
        name.strip_prefix(&prefix)
            .unwrap_or(name)
            .trim_end_matches(".fifo")
            .to_owned()
    }

    async fn call(&self, headers: &HeaderMap, target: &str, body: &Value) -> (StatusCode, Bytes) {
        let mut request = self
            .http
            .post(&self.upstream)
            .header("x-amz-target", target)
            .header("content-type", "application/x-amz-json-1.0")
            .body(body.to_string());
        if let Some(auth) = headers.get("authorization") {
            request = request.header("authorization", auth);
        }
        let answer = request.send().await.expect("moto answers the meter");
        let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
        (status, answer.bytes().await.unwrap())
    }

    async fn table(&self, headers: &HeaderMap, name: &str) -> Table {
        if let Some(table) = self.tables.lock().unwrap().get(name) {
            return table.clone();
        }
        let (_, body) = self
            .call(
                headers,
                "DynamoDB_20120810.DescribeTable",
                &json!({"TableName": name}),
            )
            .await;
        let described: Value = serde_json::from_slice(&body).unwrap();
        let table = &described["Table"];
        assert!(
            table.is_object(),
            "the meter describes a table that exists: {described}"
        );
        let names = |schema: &Value| -> Vec<String> {
            schema
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|k| k["AttributeName"].as_str().map(str::to_owned))
                .collect()
        };
        let keys = names(&table["KeySchema"]);
        let indexes = table["GlobalSecondaryIndexes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|index| IndexShape {
                name: index["IndexName"].as_str().unwrap_or_default().to_owned(),
                keys: names(&index["KeySchema"]),
                table_keys: keys.clone(),
                projected: match index["Projection"]["ProjectionType"].as_str() {
                    Some("ALL") => None,
                    _ => Some(
                        index["Projection"]["NonKeyAttributes"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|a| a.as_str().map(str::to_owned))
                            .collect::<BTreeSet<_>>(),
                    ),
                },
            })
            .collect();
        let table = Table { keys, indexes };
        self.tables
            .lock()
            .unwrap()
            .insert(name.to_owned(), table.clone());
        table
    }

    /// The stored item at `key` (a consistent read, not billed).
    async fn image(
        &self,
        headers: &HeaderMap,
        table: &str,
        key: &Value,
    ) -> Option<Map<String, Value>> {
        let (_, body) = self
            .call(
                headers,
                "DynamoDB_20120810.GetItem",
                &json!({"TableName": table, "Key": key, "ConsistentRead": true}),
            )
            .await;
        let answer: Value = serde_json::from_slice(&body).ok()?;
        answer["Item"].as_object().cloned()
    }
}

/// What a write request touches: table, key, and whether it is part of a transaction.
fn written_keys(
    action: &str,
    request: &Value,
    tables: &HashMap<String, Table>,
) -> Vec<(String, Value, bool)> {
    let key_of = |table: &str, item: &Value| -> Value {
        let keys = tables
            .get(table)
            .map(|t| t.keys.clone())
            .unwrap_or_default();
        Value::Object(
            keys.iter()
                .filter_map(|k| item.get(k).map(|v| (k.clone(), v.clone())))
                .collect(),
        )
    };
    let one = |op: &Value, transactional: bool| -> Option<(String, Value, bool)> {
        let table = op["TableName"].as_str()?.to_owned();
        let key = match op.get("Item") {
            Some(item) => key_of(&table, item),
            None => op.get("Key")?.clone(),
        };
        Some((table, key, transactional))
    };
    match action {
        "PutItem" | "UpdateItem" | "DeleteItem" => one(request, false).into_iter().collect(),
        "TransactWriteItems" => request["TransactItems"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|entry| {
                ["Put", "Update", "Delete", "ConditionCheck"]
                    .iter()
                    .find_map(|kind| entry.get(*kind))
                    .and_then(|op| one(op, true))
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Drops `FilterExpression` from a Query, and the placeholders only it used.
fn without_filter(request: &Value) -> Value {
    let mut request = request.clone();
    let Some(object) = request.as_object_mut() else {
        return request;
    };
    object.remove("FilterExpression");
    let used: String = ["KeyConditionExpression", "ProjectionExpression"]
        .iter()
        .filter_map(|k| object.get(*k).and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    let mentioned = |token: &str| {
        used.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':' || c == '#'))
            .any(|t| t == token)
    };
    for field in ["ExpressionAttributeValues", "ExpressionAttributeNames"] {
        if let Some(Value::Object(map)) = object.get_mut(field) {
            map.retain(|name, _| mentioned(name));
            if map.is_empty() {
                object.remove(field);
            }
        }
    }
    request
}

async fn forward(State(meter): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let (service, action) = match target.split_once('.') {
        Some((service, action)) if service.starts_with("DynamoDB") => {
            ("dynamodb", action.to_owned())
        }
        Some((service, action)) if service.starts_with("AmazonSQS") => ("sqs", action.to_owned()),
        _ => ("", String::new()),
    };
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);

    // Before a write: the items it will touch.
    let mut before = Vec::new();
    let writes = ["PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems"];
    if service == "dynamodb" && writes.contains(&action.as_str()) {
        if let Some(table) = request["TableName"].as_str() {
            meter.table(&headers, table).await;
        }
        if action == "TransactWriteItems" {
            for entry in request["TransactItems"].as_array().into_iter().flatten() {
                for op in entry.as_object().into_iter().flat_map(|o| o.values()) {
                    if let Some(table) = op["TableName"].as_str() {
                        meter.table(&headers, table).await;
                    }
                }
            }
        }
        let tables = meter.tables.lock().unwrap().clone();
        for (table, key, transactional) in written_keys(&action, &request, &tables) {
            let image = meter.image(&headers, &table, &key).await;
            before.push((table, key, transactional, image));
        }
    }

    // The request itself, unchanged.
    let mut upstream = meter.http.post(&meter.upstream).body(body.clone());
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            upstream = upstream.header(name, value);
        }
    }
    let answer = upstream.send().await.expect("moto answers");
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
    let answer_headers = answer.headers().clone();
    let answer_body = answer.bytes().await.unwrap();

    if !service.is_empty() && status.is_success() {
        let mut billed = Billed {
            service,
            action: action.clone(),
            read_units: BTreeMap::new(),
            write_units: BTreeMap::new(),
            queue: None,
            sqs_requests: 0,
            items_written: Vec::new(),
        };
        let response: Value = serde_json::from_slice(&answer_body).unwrap_or(Value::Null);
        match service {
            "dynamodb" => {
                bill_dynamodb(
                    &meter,
                    &headers,
                    &action,
                    &request,
                    &response,
                    before,
                    &mut billed,
                )
                .await
            }
            _ => {
                billed.queue = request["QueueUrl"].as_str().map(|q| meter.logical(q));
                let payload = match action.as_str() {
                    "SendMessage" => request["MessageBody"].as_str().map_or(0, str::len),
                    "SendMessageBatch" => request["Entries"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|e| e["MessageBody"].as_str().map_or(0, str::len))
                        .sum(),
                    _ => 0,
                } as u64;
                billed.sqs_requests = payload.div_ceil(64 * 1024).max(1);
            }
        }
        meter.billed.lock().unwrap().push(billed);
    }

    let mut response = (status, answer_body).into_response();
    for (name, value) in &answer_headers {
        if name != "content-length" && name != "transfer-encoding" {
            response.headers_mut().insert(name, value.clone());
        }
    }
    response
}

type Images = Vec<(String, Value, bool, Option<Map<String, Value>>)>;

async fn bill_dynamodb(
    meter: &Inner,
    headers: &HeaderMap,
    action: &str,
    request: &Value,
    response: &Value,
    before: Images,
    billed: &mut Billed,
) {
    let consistent = request["ConsistentRead"].as_bool().unwrap_or(false);
    let add = |map: &mut BTreeMap<String, f64>, name: String, units: f64| {
        *map.entry(name).or_default() += units;
    };
    match action {
        "GetItem" => {
            let table = meter.logical(request["TableName"].as_str().unwrap_or_default());
            let size = response["Item"].as_object().map_or(0, item_size);
            add(&mut billed.read_units, table, read_units(size, consistent));
        }
        "BatchGetItem" => {
            for (table, asked) in request["RequestItems"].as_object().into_iter().flatten() {
                let consistent = asked["ConsistentRead"].as_bool().unwrap_or(false);
                let found = response["Responses"][table]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let missing = asked["Keys"]
                    .as_array()
                    .map_or(0, Vec::len)
                    .saturating_sub(found.len());
                let mut units: f64 = found
                    .iter()
                    .map(|i| read_units(i.as_object().map_or(0, item_size), consistent))
                    .sum();
                units += missing as f64 * read_units(0, consistent);
                add(&mut billed.read_units, meter.logical(table), units);
            }
        }
        "Query" => {
            // Every entry evaluated, before the filter: the same query, unfiltered.
            let evaluated = if request.get("FilterExpression").is_some() {
                let (_, body) = meter
                    .call(headers, "DynamoDB_20120810.Query", &without_filter(request))
                    .await;
                serde_json::from_slice(&body).unwrap_or(Value::Null)
            } else {
                response.clone()
            };
            let bytes: u64 = evaluated["Items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|i| i.as_object().map_or(0, item_size))
                .sum();
            let table = meter.logical(request["TableName"].as_str().unwrap_or_default());
            let name = match request["IndexName"].as_str() {
                Some(index) => format!("{table}/{index}"),
                None => table,
            };
            add(&mut billed.read_units, name, read_units(bytes, consistent));
        }
        _ => {
            for (table, key, transactional, old) in before {
                let new = meter.image(headers, &table, &key).await;
                let logical = meter.logical(&table);
                add(
                    &mut billed.write_units,
                    logical.clone(),
                    write_units(old.as_ref(), new.as_ref(), transactional),
                );
                if let Some(item) = &new {
                    billed
                        .items_written
                        .push((logical.clone(), item_size(item)));
                }
                let shape = meter.tables.lock().unwrap().get(&table).cloned();
                for index in shape.map(|t| t.indexes).unwrap_or_default() {
                    let units = index.write_units(old.as_ref(), new.as_ref());
                    if units > 0.0 {
                        add(
                            &mut billed.write_units,
                            format!("{logical}/{}", index.name),
                            units,
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unfiltered_query_keeps_only_the_placeholders_it_uses() {
        let query = json!({
            "KeyConditionExpression": "ListingKey = :key AND Listing <= :upper",
            "FilterExpression": "#Status = :status",
            "ExpressionAttributeValues": {":key": {"S": "k"}, ":upper": {"S": "u"}, ":status": {"S": "s"}},
            "ExpressionAttributeNames": {"#Status": "Status"}
        });
        let plain = without_filter(&query);
        assert!(plain.get("FilterExpression").is_none());
        assert!(plain.get("ExpressionAttributeNames").is_none());
        let values = plain["ExpressionAttributeValues"].as_object().unwrap();
        assert_eq!(values.keys().collect::<Vec<_>>(), [":key", ":upper"]);
    }
}

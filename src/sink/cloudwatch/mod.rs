//! The `cloudwatch` sink: records as log events of CloudWatch Logs, by PutLogEvents.
//!
//! Owns the AWS client, group and stream creation, and the classification of CloudWatch's
//! errors; how a batch becomes requests within the API's limits is [`requests`] (pure).
//! Each chunk's log group and stream are its sink templates filled from the chunk's route
//! values (a placeholder with no value takes `route.default_topic`); a name CloudWatch
//! would refuse has its illegal characters replaced by `_`. A group outside the sink's
//! `allowed_destinations` is filled again with `route.default_topic` for every placeholder
//! the pod chose (`{label.KEY}`, `{annotation.KEY}`), as if the pod had not set them.
//!
//! Delivery: a batch's requests are sent stream by stream, one request in flight per
//! stream (so a stream's events arrive in order), several streams at once. A request that
//! fails for a passing reason (throttling, 5xx, timeouts, the network) stops its stream's
//! queue and the batch is retried by the sink task; the retry sends only the requests not
//! yet accepted (the plan is kept across retries, so a record's timestamp and request
//! stay the same). A stream or group that does not exist (ResourceNotFoundException) is
//! created — the group only with `auto_create_group`, its retention then set from
//! `retention_days` — and the request sent again at once. No sequence tokens: the API
//! ignores them now.
//!
//! Refused for good, counted in `shiplog_records_failed_total` and logged, never retried:
//! events PutLogEvents lists in `rejectedLogEventsInfo` (too old, too new, expired), and a
//! whole request it calls invalid (InvalidParameterException).
//!
//! The client is made at the first send (AWS' configuration chain is asynchronous): the
//! region from `region` or the environment chain, credentials from the default chain
//! (environment, web identity/IRSA, ECS, IMDS), `endpoint` as an override.

pub mod requests;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::BehaviorVersion;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use futures::StreamExt;

use self::requests::{Destination, LIMITS, Plan, RejectedInfo, Request};
use super::destinations::Destinations;
use super::{AckId, Batch, SendError, Sent};
use crate::config::CloudwatchConfig;
use crate::metrics::{Metrics, SinkLabel};
use crate::route::{Placeholder, RouteValues, Template};

/// Streams sent to at once within one batch.
const STREAMS_AT_ONCE: usize = 8;

/// How long one call to CloudWatch may take, retries by the SDK included.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends batches to CloudWatch Logs.
pub struct CloudwatchSink {
    config: CloudwatchConfig,
    /// Made at the first send.
    client: Option<Client>,
    /// The batch being sent and which of its requests are accepted, across retries.
    progress: Option<Progress>,
    /// `allowed_destinations`: the log groups the template may fill in.
    destinations: Destinations,
    metrics: Arc<Metrics>,
    label: SinkLabel,
}

impl std::fmt::Debug for CloudwatchSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudwatchSink")
            .field("log_group", &self.config.log_group.to_string())
            .field("log_stream", &self.config.log_stream.to_string())
            .finish_non_exhaustive()
    }
}

/// Which requests of one batch are accepted. A batch is known by its first chunk and its
/// size: the sink task sends the same batch again until it goes through.
#[derive(Debug)]
struct Progress {
    batch: (AckId, usize),
    plan: Plan,
    accepted: Vec<bool>,
    /// Records refused for good so far.
    rejected: usize,
}

/// Why a call to CloudWatch failed, sorted by what to do about it.
#[derive(Debug)]
enum Failure {
    /// ResourceNotFoundException: the group or the stream does not exist.
    NotFound,
    /// ResourceAlreadyExistsException: what was to be created is there.
    Exists,
    /// InvalidParameterException: this request can never succeed.
    Invalid(String),
    /// Anything else: try again later.
    Retry(String),
}

/// What sending one stream's queue of requests came to.
#[derive(Debug, Default)]
struct QueueOutcome {
    accepted: Vec<usize>,
    rejected: usize,
    failure: Option<String>,
}

/// The parts of the sink a request needs, shared by the streams sent at once.
struct Sender<'a> {
    client: &'a Client,
    config: &'a CloudwatchConfig,
    label: &'a SinkLabel,
    metrics: &'a Metrics,
}

impl CloudwatchSink {
    /// A sink for `config`; nothing is contacted until the first batch.
    pub fn open(config: &CloudwatchConfig, metrics: Arc<Metrics>, name: &str) -> Self {
        CloudwatchSink {
            config: config.clone(),
            client: None,
            progress: None,
            destinations: Destinations::new(
                config.allowed_destinations.clone(),
                Arc::clone(&metrics),
                name,
            ),
            metrics,
            label: SinkLabel {
                sink: name.to_owned(),
            },
        }
    }

    /// Sends every request of `batch` not yet accepted.
    pub async fn send(&mut self, batch: &Batch) -> Result<Sent, SendError> {
        if batch.is_empty() {
            return Ok(Sent::default());
        }
        let client = self.client().await?;
        let identity = (batch.chunks()[0].ack, batch.events());
        let mut progress = match self.progress.take() {
            Some(progress) if progress.batch == identity => progress,
            _ => self.new_progress(batch, identity),
        };
        let sender = Sender {
            client: &client,
            config: &self.config,
            label: &self.label,
            metrics: &self.metrics,
        };
        let outcomes: Vec<QueueOutcome> = futures::stream::iter(queues(&progress))
            .map(|queue| sender.send_queue(&progress.plan.requests, queue))
            .buffer_unordered(STREAMS_AT_ONCE)
            .collect()
            .await;
        let mut failure = None;
        for outcome in outcomes {
            for index in outcome.accepted {
                progress.accepted[index] = true;
            }
            progress.rejected += outcome.rejected;
            if let Some(reason) = outcome.failure {
                failure.get_or_insert(reason);
            }
        }
        match failure {
            None => Ok(Sent {
                rejected: progress.rejected.min(batch.events()),
            }),
            Some(reason) => {
                self.progress = Some(progress);
                Err(SendError::Retry(reason))
            }
        }
    }

    /// The client, made the first time from the sink's keys and AWS' configuration chain.
    async fn client(&mut self) -> Result<Client, SendError> {
        if let Some(client) = &self.client {
            return Ok(client.clone());
        }
        let client = make_client(&self.config).await?;
        self.client = Some(client.clone());
        Ok(client)
    }

    /// The requests of a batch seen for the first time.
    fn new_progress(&mut self, batch: &Batch, identity: (AckId, usize)) -> Progress {
        let destinations: Vec<Destination> = batch
            .chunks()
            .iter()
            .map(|chunk| self.destination(&chunk.route, chunk.ends.len()))
            .collect();
        let records = batch
            .chunks()
            .iter()
            .zip(&destinations)
            .flat_map(|(chunk, destination)| chunk.records().map(move |json| (destination, json)));
        let plan = requests::plan(records, now_ms(), &LIMITS);
        if plan.split_records > 0 {
            tracing::warn!(
                sink = %self.label.sink, records = plan.split_records, max_bytes = LIMITS.max_message,
                "records longer than a CloudWatch event are shipped cut into consecutive events"
            );
            self.metrics
                .cloudwatch_split_records
                .get_or_create(&self.label)
                .inc_by(plan.split_records as u64);
        }
        Progress {
            batch: identity,
            accepted: vec![false; plan.requests.len()],
            plan,
            rejected: 0,
        }
    }

    /// A chunk of `records` records' log group and stream: the templates filled, names made
    /// legal; a group outside `allowed_destinations` filled as if the pod had set none of
    /// the values it chose.
    fn destination(&mut self, route: &RouteValues, records: usize) -> Destination {
        let config = &self.config;
        let fill = |template: &Template, pod_chosen: bool| {
            template
                .fill(|placeholder| {
                    let chosen = matches!(
                        placeholder,
                        Placeholder::Label(_) | Placeholder::Annotation(_)
                    );
                    route
                        .get(placeholder)
                        .filter(|value| !value.is_empty() && (pod_chosen || !chosen))
                        .or(Some(config.fallback.as_str()))
                })
                .unwrap_or_else(|| config.fallback.clone())
        };
        let mut group = requests::group_name(&fill(&config.log_group, true));
        let fallback = requests::group_name(&fill(&config.log_group, false));
        // The fallback is where refused records go: it is never refused itself.
        if group != fallback && !self.destinations.allows(&group, route, records, &fallback) {
            group = fallback;
        }
        Destination {
            group,
            stream: requests::stream_name(&fill(&config.log_stream, true)),
        }
    }
}

/// The indexes of the requests not yet accepted, one queue per stream, in order.
fn queues(progress: &Progress) -> Vec<Vec<usize>> {
    let mut queues: Vec<Vec<usize>> = Vec::new();
    let mut by_stream: HashMap<&Destination, usize> = HashMap::new();
    for (index, request) in progress.plan.requests.iter().enumerate() {
        if progress.accepted[index] {
            continue;
        }
        let slot = *by_stream.entry(&request.destination).or_insert_with(|| {
            queues.push(Vec::new());
            queues.len() - 1
        });
        queues[slot].push(index);
    }
    queues
}

impl Sender<'_> {
    /// Sends one stream's requests in order, stopping at the first that must be retried.
    async fn send_queue(&self, requests: &[Request], queue: Vec<usize>) -> QueueOutcome {
        let mut outcome = QueueOutcome::default();
        for index in queue {
            match self.deliver(&requests[index]).await {
                Ok(rejected) => {
                    outcome.accepted.push(index);
                    outcome.rejected += rejected;
                }
                Err(reason) => {
                    outcome.failure = Some(reason);
                    break;
                }
            }
        }
        outcome
    }

    /// Delivers one request, creating its stream (and group) when missing; the records it
    /// carried that CloudWatch refused for good, or why to try again.
    async fn deliver(&self, request: &Request) -> Result<usize, String> {
        let first = match self.put(request).await {
            Err(Failure::NotFound) => {
                self.create(&request.destination).await?;
                self.put(request).await
            }
            other => other,
        };
        match first {
            Ok(rejected) => Ok(rejected),
            Err(Failure::Invalid(reason)) => {
                let records = requests::rejected_records(
                    request,
                    &RejectedInfo {
                        too_new_start: Some(0),
                        ..RejectedInfo::default()
                    },
                );
                tracing::error!(
                    sink = %self.label.sink, group = %request.destination.group,
                    stream = %request.destination.stream, records, %reason,
                    "CloudWatch refused a request as invalid; its records are not retried"
                );
                Ok(records)
            }
            Err(Failure::NotFound) => Err(format!(
                "log stream {} of group {} still does not exist after creating it",
                request.destination.stream, request.destination.group
            )),
            Err(Failure::Exists) => Err("unexpected ResourceAlreadyExistsException".to_owned()),
            Err(Failure::Retry(reason)) => Err(reason),
        }
    }

    /// One PutLogEvents call; the records of events CloudWatch refused.
    async fn put(&self, request: &Request) -> Result<usize, Failure> {
        let events = request
            .events
            .iter()
            .map(|event| {
                InputLogEvent::builder()
                    .timestamp(event.timestamp)
                    .message(event.message.clone())
                    .build()
                    .map_err(|error| Failure::Invalid(error.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let output = self
            .client
            .put_log_events()
            .log_group_name(&request.destination.group)
            .log_stream_name(&request.destination.stream)
            .set_log_events(Some(events))
            .send()
            .await
            .map_err(|error| classify(&error))?;
        self.metrics
            .cloudwatch_requests
            .get_or_create(self.label)
            .inc();
        let Some(info) = output.rejected_log_events_info() else {
            return Ok(0);
        };
        let index = |i: Option<i32>| i.and_then(|i| usize::try_from(i).ok());
        let info = RejectedInfo {
            expired_end: index(info.expired_log_event_end_index()),
            too_old_end: index(info.too_old_log_event_end_index()),
            too_new_start: index(info.too_new_log_event_start_index()),
        };
        let records = requests::rejected_records(request, &info);
        if records > 0 {
            tracing::warn!(
                sink = %self.label.sink, group = %request.destination.group,
                stream = %request.destination.stream, records,
                expired_end = ?info.expired_end, too_old_end = ?info.too_old_end,
                too_new_start = ?info.too_new_start,
                "CloudWatch refused events too old, too new or past retention; not retried"
            );
        }
        Ok(records)
    }

    /// Creates the stream, and its group first when that is missing too (if allowed).
    async fn create(&self, destination: &Destination) -> Result<(), String> {
        match self.create_stream(destination).await {
            Ok(()) | Err(Failure::Exists) => return Ok(()),
            Err(Failure::NotFound) => {}
            Err(Failure::Invalid(reason) | Failure::Retry(reason)) => return Err(reason),
        }
        if !self.config.auto_create_group {
            return Err(format!(
                "log group {} does not exist (auto_create_group = false): create it",
                destination.group
            ));
        }
        self.create_group(&destination.group).await?;
        match self.create_stream(destination).await {
            Ok(()) | Err(Failure::Exists) => Ok(()),
            Err(Failure::NotFound) => Err(format!(
                "log group {} does not exist after creating it",
                destination.group
            )),
            Err(Failure::Invalid(reason) | Failure::Retry(reason)) => Err(reason),
        }
    }

    async fn create_stream(&self, destination: &Destination) -> Result<(), Failure> {
        self.client
            .create_log_stream()
            .log_group_name(&destination.group)
            .log_stream_name(&destination.stream)
            .send()
            .await
            .map(|_| ())
            .map_err(|error| classify(&error))
    }

    /// Creates a log group and sets its retention; one that exists is left as it is.
    async fn create_group(&self, group: &str) -> Result<(), String> {
        let created = self
            .client
            .create_log_group()
            .log_group_name(group)
            .send()
            .await
            .map_err(|error| classify(&error));
        match created {
            Ok(_) => tracing::info!(sink = %self.label.sink, group, "log group created"),
            Err(Failure::Exists) => return Ok(()),
            Err(Failure::NotFound) => return Err(format!("creating log group {group}: not found")),
            Err(Failure::Invalid(reason) | Failure::Retry(reason)) => return Err(reason),
        }
        let Some(days) = self.config.retention_days else {
            return Ok(());
        };
        self.client
            .put_retention_policy()
            .log_group_name(group)
            .retention_in_days(days)
            .send()
            .await
            .map(|_| ())
            .map_err(|error| {
                // The group exists and takes records: log, and let it keep no retention
                // rather than hold back its records.
                let reason = DisplayErrorContext(&error).to_string();
                tracing::error!(sink = %self.label.sink, group, days, %reason, "setting the log group's retention failed");
            })
            .ok();
        Ok(())
    }
}

/// CloudWatch's error codes sorted by what to do about them: the few that mean "missing",
/// "there already" or "never"; everything else (ThrottlingException, ServiceUnavailable,
/// 5xx, timeouts, the network) is worth another try.
fn classify<E, R>(error: &SdkError<E, R>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let reason = DisplayErrorContext(error).to_string();
    let code = match error {
        SdkError::ServiceError(service) => service.err().code(),
        _ => None,
    };
    match code {
        Some("ResourceNotFoundException") => Failure::NotFound,
        Some("ResourceAlreadyExistsException") => Failure::Exists,
        Some("InvalidParameterException") => Failure::Invalid(reason),
        _ => Failure::Retry(reason),
    }
}

/// The client for `config`: its region or the environment's, its endpoint if set.
async fn make_client(config: &CloudwatchConfig) -> Result<Client, SendError> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(
        TimeoutConfig::builder()
            .operation_timeout(CALL_TIMEOUT)
            .build(),
    );
    if let Some(region) = &config.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(endpoint) = &config.endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    let sdk = loader.load().await;
    if sdk.region().is_none() {
        return Err(SendError::Fatal(
            "no AWS region: set the sink's region, or AWS_REGION".to_owned(),
        ));
    }
    Ok(Client::new(&sdk))
}

/// The wall clock in milliseconds since the epoch: the time of records without one.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use aws_sdk_cloudwatchlogs::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_cloudwatchlogs::operation::put_log_events::PutLogEventsError;

    use super::*;

    fn service(code: &str) -> SdkError<PutLogEventsError, ()> {
        let metadata = ErrorMetadata::builder()
            .code(code)
            .message("from the test")
            .build();
        SdkError::service_error(PutLogEventsError::generic(metadata), ())
    }

    fn kind(failure: &Failure) -> &'static str {
        match failure {
            Failure::NotFound => "not found",
            Failure::Exists => "exists",
            Failure::Invalid(_) => "invalid",
            Failure::Retry(_) => "retry",
        }
    }

    #[test]
    fn cloudwatch_errors_are_sorted_into_missing_there_never_and_retry() {
        let io = || std::io::Error::other("connection refused");
        let cases: [(SdkError<PutLogEventsError, ()>, &str); 8] = [
            (service("ResourceNotFoundException"), "not found"),
            (service("ResourceAlreadyExistsException"), "exists"),
            (service("InvalidParameterException"), "invalid"),
            (service("ThrottlingException"), "retry"),
            (service("ServiceUnavailableException"), "retry"),
            (service("InternalFailure"), "retry"),
            (SdkError::timeout_error(io()), "retry"),
            (
                SdkError::dispatch_failure(ConnectorError::io(io().into())),
                "retry",
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(kind(&classify(&error)), expected, "{error:?}");
        }
    }

    #[test]
    fn a_retried_reason_names_the_code_and_the_message() {
        let Failure::Retry(reason) = classify(&service("ThrottlingException")) else {
            panic!("throttling is retried");
        };
        assert!(reason.contains("ThrottlingException"), "{reason}");
        assert!(reason.contains("from the test"), "{reason}");
    }
}

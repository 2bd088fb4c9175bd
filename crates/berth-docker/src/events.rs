//! The engine's event stream, narrowed to berth's containers.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{EventMessage, EventMessageTypeEnum};
use bollard::query_parameters::EventsOptionsBuilder;
use futures_util::{Stream, StreamExt};

use crate::client::{channel_stream, label_filters};
use crate::{DockerClient, DockerError};

/// Event attributes that are Docker's metadata, not container labels.
const NOT_LABELS: [&str; 4] = ["name", "image", "exitCode", "signal"];

/// Something that happened to a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    /// Full container ID.
    pub container_id: String,
    /// Container name (without leading slash).
    pub name: String,
    /// Docker's action: `create`, `start`, `die`, `stop`, `kill`, `oom`,
    /// `destroy`, `restart`, `pause`, `unpause`, `health_status: healthy`, …
    pub action: String,
    /// Exit code, on `die`.
    pub exit_code: Option<i64>,
    /// The container's labels.
    pub labels: BTreeMap<String, String>,
    /// Unix time in seconds.
    pub time: i64,
}

impl DockerClient {
    /// Events of containers carrying all the given labels (an empty value
    /// matches any value of that key), from now on, until the stream is
    /// dropped. The stream ends (after an `Err` item, if the engine sent
    /// one) when the connection to the engine drops; call again to resume.
    pub fn container_events(
        &self,
        labels: &[(&str, &str)],
    ) -> impl Stream<Item = Result<ContainerEvent, DockerError>> + Send + Unpin + 'static {
        self.events(labels, None)
    }

    /// Like [`container_events`](Self::container_events), but first replays
    /// the engine's recent events since `since` (Unix seconds), so a caller
    /// that reconnects, or subscribes just after acting, misses nothing.
    pub fn container_events_since(
        &self,
        labels: &[(&str, &str)],
        since: i64,
    ) -> impl Stream<Item = Result<ContainerEvent, DockerError>> + Send + Unpin + 'static {
        self.events(labels, Some(since))
    }

    fn events(
        &self,
        labels: &[(&str, &str)],
        since: Option<i64>,
    ) -> impl Stream<Item = Result<ContainerEvent, DockerError>> + Send + Unpin + 'static {
        let client = self.clone();
        let mut filters: HashMap<String, Vec<String>> = label_filters(labels);
        filters.insert("type".to_owned(), vec!["container".to_owned()]);
        channel_stream(move |tx| async move {
            let docker = match client.docker().await {
                Ok(docker) => docker,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            let mut options = EventsOptionsBuilder::new().filters(&filters);
            if let Some(since) = since {
                options = options.since(&since.to_string());
            }
            let options = options.build();
            let mut messages = docker.events(Some(options));
            while let Some(message) = messages.next().await {
                let item = match message {
                    Ok(message) => match container_event(message) {
                        Some(event) => Ok(event),
                        None => continue,
                    },
                    Err(e) => Err(client.err(e)),
                };
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    return;
                }
            }
        })
    }
}

fn container_event(message: EventMessage) -> Option<ContainerEvent> {
    if message.typ != Some(EventMessageTypeEnum::CONTAINER) {
        return None;
    }
    let actor = message.actor?;
    let container_id = actor.id.filter(|id| !id.is_empty())?;
    let mut attributes = actor.attributes.unwrap_or_default();
    let exit_code = attributes.get("exitCode").and_then(|c| c.parse().ok());
    let name = attributes.get("name").cloned().unwrap_or_default();
    for key in NOT_LABELS {
        attributes.remove(key);
    }
    Some(ContainerEvent {
        container_id,
        name,
        action: message.action.unwrap_or_default(),
        exit_code,
        labels: attributes.into_iter().collect(),
        time: message.time.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::EventActor;

    #[test]
    fn die_events_carry_exit_code_and_labels() {
        let message = EventMessage {
            typ: Some(EventMessageTypeEnum::CONTAINER),
            action: Some("die".into()),
            actor: Some(EventActor {
                id: Some("abc".into()),
                attributes: Some(HashMap::from([
                    ("exitCode".into(), "3".into()),
                    ("name".into(), "web-1".into()),
                    ("image".into(), "berth-test/web".into()),
                    ("berth.app".into(), "web".into()),
                ])),
            }),
            time: Some(1_700_000_000),
            ..Default::default()
        };
        let event = container_event(message).unwrap();
        assert_eq!(event.container_id, "abc");
        assert_eq!(event.name, "web-1");
        assert_eq!(event.action, "die");
        assert_eq!(event.exit_code, Some(3));
        assert_eq!(
            event.labels,
            BTreeMap::from([("berth.app".to_owned(), "web".to_owned())])
        );
        assert_eq!(event.time, 1_700_000_000);
    }

    #[test]
    fn other_event_types_are_skipped() {
        let message = EventMessage {
            typ: Some(EventMessageTypeEnum::NETWORK),
            ..Default::default()
        };
        assert_eq!(container_event(message), None);
    }
}

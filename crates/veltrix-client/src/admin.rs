//! Metadata and topic administration: listing, describing, creating and deleting
//! topics, and reading a topic's configuration (DescribeConfigs).
//!
//! Each helper builds its request for the negotiated version, leaving at their
//! defaults the fields that version does not have (the codec refuses to encode
//! them otherwise), and turns the answer into plain types. A per-topic error
//! code becomes a [`ClientError::Kafka`] naming the topic.

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest, MetadataRequest, MetadataResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::Client;
use crate::connection::{duration_ms, kafka_error};
use crate::error::{ClientError, KafkaError, check};

/// DescribeConfigs resource type of a topic.
const RESOURCE_TOPIC: i8 = 2;

/// The cluster as one Metadata response describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMetadata {
    /// Absent before Metadata v2.
    pub cluster_id: Option<String>,
    pub controller_id: i32,
    pub brokers: Vec<BrokerMetadata>,
    /// In the broker's order; each with its own error, if any.
    pub topics: Vec<TopicMetadata>,
}

/// One broker of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerMetadata {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
}

/// One topic of a Metadata response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    pub name: String,
    /// The topic id as a UUID string; absent before Metadata v10 or if nil.
    pub id: Option<String>,
    pub is_internal: bool,
    /// Why the topic could not be described (e.g. UNKNOWN_TOPIC_OR_PARTITION).
    pub error: Option<KafkaError>,
    /// Sorted by index.
    pub partitions: Vec<PartitionMetadata>,
}

/// One partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMetadata {
    pub index: i32,
    /// The leader's node id; -1 if there is none.
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub error: Option<KafkaError>,
}

/// What CreateTopics reports about a created topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedTopic {
    pub name: String,
    /// Known from CreateTopics v5 on.
    pub partitions: Option<i32>,
}

/// One configuration entry of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    /// Absent for sensitive entries.
    pub value: Option<String>,
    /// Kafka's ConfigSource code; see [`config_source_name`].
    pub source: i8,
    pub read_only: bool,
    pub sensitive: bool,
}

/// The Java name of a DescribeConfigs config source.
pub fn config_source_name(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        7 => "CLIENT_METRICS_CONFIG",
        8 => "GROUP_CONFIG",
        _ => "UNKNOWN",
    }
}

pub(crate) fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

fn cluster_metadata(response: MetadataResponse) -> ClusterMetadata {
    ClusterMetadata {
        cluster_id: response.cluster_id.map(|c| c.as_str().to_owned()),
        controller_id: response.controller_id.0,
        brokers: response
            .brokers
            .iter()
            .map(|b| BrokerMetadata {
                node_id: b.node_id.0,
                host: b.host.as_str().to_owned(),
                port: b.port,
            })
            .collect(),
        topics: response
            .topics
            .iter()
            .map(|t| {
                let mut partitions: Vec<PartitionMetadata> = t
                    .partitions
                    .iter()
                    .map(|p| PartitionMetadata {
                        index: p.partition_index,
                        leader: p.leader_id.0,
                        replicas: p.replica_nodes.iter().map(|n| n.0).collect(),
                        isr: p.isr_nodes.iter().map(|n| n.0).collect(),
                        error: kafka_error(p.error_code, None),
                    })
                    .collect();
                partitions.sort_by_key(|p| p.index);
                TopicMetadata {
                    name: t.name.as_ref().map(|n| n.0.as_str().to_owned()).unwrap_or_default(),
                    id: (!t.topic_id.is_nil()).then(|| t.topic_id.to_string()),
                    is_internal: t.is_internal,
                    error: kafka_error(t.error_code, None),
                    partitions,
                }
            })
            .collect(),
    }
}

impl Client {
    /// Metadata of the named topics, or of every topic for `None`. Unknown
    /// topics are reported in their entry's `error`, never created.
    pub async fn metadata(&mut self, topics: Option<&[&str]>) -> Result<ClusterMetadata, ClientError> {
        let version = self.connection.version(ApiKey::Metadata)?;
        let mut request = MetadataRequest::default();
        request.topics = topics.map(|names| {
            names
                .iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(n))))
                .collect()
        });
        // From v4 a client can ask the broker not to create what it names; before
        // that the field does not exist and must keep its default.
        if version >= 4 {
            request.allow_auto_topic_creation = false;
        }
        let response = self.connection.call(&request, version).await?;
        Ok(cluster_metadata(response))
    }

    /// Metadata of one topic; an error if the broker reports one for it.
    pub async fn topic(&mut self, name: &str) -> Result<TopicMetadata, ClientError> {
        let metadata = self.metadata(Some(&[name])).await?;
        let topic = metadata
            .topics
            .into_iter()
            .find(|t| t.name == name)
            .ok_or_else(|| ClientError::UnexpectedResponse(format!("Metadata does not mention topic `{name}`")))?;
        if let Some(error) = topic.error {
            return Err(ClientError::Kafka {
                context: format!("topic `{name}`"),
                error,
            });
        }
        Ok(topic)
    }

    /// Creates a topic with `partitions` partitions (the broker's default for
    /// `None`) and the given Kafka topic configs (`retention.ms`, ...).
    pub async fn create_topic(
        &mut self,
        name: &str,
        partitions: Option<i32>,
        configs: &[(String, String)],
    ) -> Result<CreatedTopic, ClientError> {
        let version = self.connection.version(ApiKey::CreateTopics)?;
        // -1 (the broker's default) exists from v4 on.
        let defaults_allowed = version >= 4;
        let num_partitions = match partitions {
            Some(n) if n >= 1 => n,
            Some(n) => {
                return Err(ClientError::InvalidArgument(format!(
                    "a topic needs at least 1 partition, not {n}"
                )));
            }
            None if defaults_allowed => -1,
            None => {
                return Err(ClientError::InvalidArgument(
                    "this broker needs an explicit partition count".to_owned(),
                ));
            }
        };
        let mut topic = CreatableTopic::default();
        topic.name = topic_name(name);
        topic.num_partitions = num_partitions;
        topic.replication_factor = if defaults_allowed { -1 } else { 1 };
        topic.configs = configs
            .iter()
            .map(|(k, v)| {
                CreatableTopicConfig::default()
                    .with_name(StrBytes::from_string(k.clone()))
                    .with_value(Some(StrBytes::from_string(v.clone())))
            })
            .collect();
        let timeout_ms = i32::try_from(duration_ms(self.connection.config().request_timeout)).unwrap_or(i32::MAX);
        let request = CreateTopicsRequest::default()
            .with_topics(vec![topic])
            .with_timeout_ms(timeout_ms);
        let response = self.connection.call(&request, version).await?;
        let result = response
            .topics
            .iter()
            .find(|t| t.name.0.as_str() == name)
            .ok_or_else(|| ClientError::UnexpectedResponse(format!("CreateTopics does not mention topic `{name}`")))?;
        check(
            result.error_code,
            result.error_message.as_ref().map(|m| m.as_str().to_owned()),
            || format!("creating topic `{name}`"),
        )?;
        Ok(CreatedTopic {
            name: name.to_owned(),
            partitions: (version >= 5 && result.num_partitions > 0).then_some(result.num_partitions),
        })
    }

    /// Deletes a topic and its data.
    pub async fn delete_topic(&mut self, name: &str) -> Result<(), ClientError> {
        let version = self.connection.version(ApiKey::DeleteTopics)?;
        let timeout_ms = i32::try_from(duration_ms(self.connection.config().request_timeout)).unwrap_or(i32::MAX);
        let mut request = DeleteTopicsRequest::default().with_timeout_ms(timeout_ms);
        // v6 names topics in entries that may carry an id instead; before, by name.
        if version >= 6 {
            request.topics = vec![DeleteTopicState::default().with_name(Some(topic_name(name)))];
        } else {
            request.topic_names = vec![topic_name(name)];
        }
        let response = self.connection.call(&request, version).await?;
        let result = response
            .responses
            .iter()
            .find(|r| r.name.as_ref().is_some_and(|n| n.0.as_str() == name))
            .ok_or_else(|| ClientError::UnexpectedResponse(format!("DeleteTopics does not mention topic `{name}`")))?;
        check(
            result.error_code,
            result.error_message.as_ref().map(|m| m.as_str().to_owned()),
            || format!("deleting topic `{name}`"),
        )
    }

    /// Every configuration entry of a topic, as DescribeConfigs reports them.
    pub async fn describe_topic_configs(&mut self, name: &str) -> Result<Vec<ConfigEntry>, ClientError> {
        let version = self.connection.version(ApiKey::DescribeConfigs)?;
        let resource = DescribeConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(StrBytes::from_string(name.to_owned()))
            .with_configuration_keys(None);
        let request = DescribeConfigsRequest::default().with_resources(vec![resource]);
        let response = self.connection.call(&request, version).await?;
        let result = response
            .results
            .iter()
            .find(|r| r.resource_type == RESOURCE_TOPIC && r.resource_name.as_str() == name)
            .ok_or_else(|| {
                ClientError::UnexpectedResponse(format!("DescribeConfigs does not mention topic `{name}`"))
            })?;
        check(
            result.error_code,
            result.error_message.as_ref().map(|m| m.as_str().to_owned()),
            || format!("describing the configuration of topic `{name}`"),
        )?;
        Ok(result
            .configs
            .iter()
            .map(|c| ConfigEntry {
                name: c.name.as_str().to_owned(),
                value: c.value.as_ref().map(|v| v.as_str().to_owned()),
                source: c.config_source,
                read_only: c.read_only,
                sensitive: c.is_sensitive,
            })
            .collect())
    }
}

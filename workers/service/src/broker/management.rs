//! A small client of the RabbitMQ management HTTP API, for what AMQP cannot
//! do: vhosts, users, permissions, forcing connections closed. Used by the
//! provisioning command, the benchmark and the tests.

use serde::Deserialize;
use serde_json::json;

use super::topology::Definitions;

#[derive(Debug, thiserror::Error)]
pub enum ManagementError {
    #[error("management API request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("management API answered {status} to {what}: {body}")]
    Status {
        what: String,
        status: reqwest::StatusCode,
        body: String,
    },
    #[error("management URL must look like http://user:password@host:port (several: comma separated), got {0}")]
    BadUrl(String),
}

/// A client of one broker's management API, or of a cluster's: any node
/// answers for the whole cluster, so the node that answered last is asked
/// first and the next one when it does not answer.
#[derive(Clone)]
pub struct Management {
    /// `http://host:port` of each node.
    bases: Vec<String>,
    user: String,
    password: String,
    http: reqwest::Client,
    answered_last: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// Where a quorum queue's replicas are.
#[derive(Debug, Clone, Deserialize)]
pub struct QueueMembers {
    /// The node leading it (absent while it elects one).
    #[serde(default)]
    pub leader: Option<String>,
    #[serde(default)]
    pub members: Vec<String>,
    /// Ready and unacknowledged messages (refreshed every few seconds).
    #[serde(default)]
    pub messages: Option<u64>,
    #[serde(default)]
    pub consumers: Option<u64>,
}

#[derive(Debug, Deserialize)]
/// Anything the management API lists by name.
struct ConnectionInfo {
    name: String,
}

fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Management {
    /// `urls` is `http://user:password@host:port`, or several such (a
    /// cluster's nodes, same user) separated by commas.
    pub fn new(urls: &str) -> Result<Self, ManagementError> {
        let mut bases = Vec::new();
        let mut credentials = None;
        for url in super::nodes::split(urls) {
            let bad_one = || ManagementError::BadUrl(crate::secrets::redacted_url(url));
            let rest = url.strip_prefix("http://").ok_or_else(bad_one)?;
            let (user_password, host) = rest.split_once('@').ok_or_else(bad_one)?;
            let (user, password) = user_password.split_once(':').ok_or_else(bad_one)?;
            credentials.get_or_insert((user.to_owned(), password.to_owned()));
            bases.push(format!("http://{}", host.trim_end_matches('/')));
        }
        let (user, password) =
            credentials.ok_or_else(|| ManagementError::BadUrl("(none given)".into()))?;
        Ok(Self {
            bases,
            user,
            password,
            http: reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(5))
                .build()?,
            answered_last: Default::default(),
        })
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<reqwest::Response, ManagementError> {
        use std::sync::atomic::Ordering;
        let first = self.answered_last.load(Ordering::Relaxed);
        let mut unreachable = None;
        for index in super::nodes::attempt_order(self.bases.len(), first) {
            let mut request = self
                .http
                .request(method.clone(), format!("{}/api/{path}", self.bases[index]))
                .basic_auth(&self.user, Some(&self.password));
            if let Some(body) = &body {
                request = request.json(body);
            }
            match request.send().await {
                Ok(response) => {
                    self.answered_last.store(index, Ordering::Relaxed);
                    return self.checked(method, path, response).await;
                }
                // A node down or cut off: the next one answers as well.
                Err(error) if error.is_connect() || error.is_timeout() => unreachable = Some(error),
                Err(error) => return Err(error.into()),
            }
        }
        Err(match unreachable {
            Some(error) => error.into(),
            None => ManagementError::BadUrl(String::new()),
        })
    }

    async fn checked(
        &self,
        method: reqwest::Method,
        path: &str,
        response: reqwest::Response,
    ) -> Result<reqwest::Response, ManagementError> {
        if response.status().is_success()
            || (method == reqwest::Method::DELETE && response.status() == 404)
        {
            Ok(response)
        } else {
            Err(ManagementError::Status {
                what: format!("{method} {path}"),
                status: response.status(),
                body: response.text().await.unwrap_or_default(),
            })
        }
    }

    pub async fn create_vhost(&self, vhost: &str) -> Result<(), ManagementError> {
        self.send(
            reqwest::Method::PUT,
            &format!("vhosts/{}", encode(vhost)),
            Some(json!({})),
        )
        .await?;
        Ok(())
    }

    pub async fn delete_vhost(&self, vhost: &str) -> Result<(), ManagementError> {
        self.send(
            reqwest::Method::DELETE,
            &format!("vhosts/{}", encode(vhost)),
            None,
        )
        .await?;
        Ok(())
    }

    pub async fn put_user(&self, user: &str, password: &str) -> Result<(), ManagementError> {
        let body = json!({ "password": password, "tags": "" });
        self.send(
            reqwest::Method::PUT,
            &format!("users/{}", encode(user)),
            Some(body),
        )
        .await?;
        Ok(())
    }

    pub async fn delete_user(&self, user: &str) -> Result<(), ManagementError> {
        self.send(
            reqwest::Method::DELETE,
            &format!("users/{}", encode(user)),
            None,
        )
        .await?;
        Ok(())
    }

    pub async fn set_permissions(
        &self,
        vhost: &str,
        user: &str,
        configure: &str,
        write: &str,
        read: &str,
    ) -> Result<(), ManagementError> {
        let body = json!({ "configure": configure, "write": write, "read": read });
        self.send(
            reqwest::Method::PUT,
            &format!("permissions/{}/{}", encode(vhost), encode(user)),
            Some(body),
        )
        .await?;
        Ok(())
    }

    pub async fn set_topic_permissions(
        &self,
        vhost: &str,
        user: &str,
        exchange: &str,
        write: &str,
        read: &str,
    ) -> Result<(), ManagementError> {
        let body = json!({ "exchange": exchange, "write": write, "read": read });
        self.send(
            reqwest::Method::PUT,
            &format!("topic-permissions/{}/{}", encode(vhost), encode(user)),
            Some(body),
        )
        .await?;
        Ok(())
    }

    /// Sets a policy (e.g. a queue's length bound) on `vhost`; `definition`
    /// as in the definitions file.
    pub async fn set_policy(
        &self,
        vhost: &str,
        name: &str,
        pattern: &str,
        apply_to: &str,
        definition: &serde_json::Value,
    ) -> Result<(), ManagementError> {
        let body = json!({ "pattern": pattern, "apply-to": apply_to, "definition": definition, "priority": 0 });
        self.send(
            reqwest::Method::PUT,
            &format!("policies/{}/{}", encode(vhost), encode(name)),
            Some(body),
        )
        .await?;
        Ok(())
    }

    /// Memory the broker's nodes use now, in bytes (summed over the cluster).
    pub async fn memory_used(&self) -> Result<u64, ManagementError> {
        let nodes: Vec<serde_json::Value> = self.get("nodes?columns=mem_used").await?;
        Ok(nodes.iter().filter_map(|n| n["mem_used"].as_u64()).sum())
    }

    /// The node leading a (quorum) queue and every node holding a member.
    pub async fn queue_members(
        &self,
        vhost: &str,
        queue: &str,
    ) -> Result<QueueMembers, ManagementError> {
        self.get(&format!("queues/{}/{}", encode(vhost), encode(queue)))
            .await
    }

    /// The node of each consumer's channel on `vhost` (one entry per consumer).
    pub async fn consumer_nodes(&self, vhost: &str) -> Result<Vec<String>, ManagementError> {
        let consumers: Vec<serde_json::Value> =
            self.get(&format!("consumers/{}", encode(vhost))).await?;
        // A consumer names its channel's connection; the connection its node.
        let connections = self.connections(vhost).await?;
        let node_of = |name: &str| {
            connections
                .iter()
                .find(|c| c["name"].as_str() == Some(name))
                .and_then(|c| c["node"].as_str())
                .map(str::to_owned)
        };
        Ok(consumers
            .iter()
            .filter_map(|c| c["channel_details"]["connection_name"].as_str())
            .filter_map(node_of)
            .collect())
    }

    /// The node of each client connection to `vhost`.
    pub async fn connection_nodes(&self, vhost: &str) -> Result<Vec<String>, ManagementError> {
        Ok(self
            .connections(vhost)
            .await?
            .iter()
            .filter_map(|c| c["node"].as_str().map(str::to_owned))
            .collect())
    }

    /// The user of each client connection to `vhost`, with the connection's
    /// client-given name (what the least-privilege test asks).
    pub async fn connection_users(
        &self,
        vhost: &str,
    ) -> Result<Vec<(String, String)>, ManagementError> {
        Ok(self
            .connections(vhost)
            .await?
            .iter()
            .map(|c| {
                let field =
                    |value: &serde_json::Value| value.as_str().unwrap_or_default().to_owned();
                (
                    field(&c["client_properties"]["connection_name"]),
                    field(&c["user"]),
                )
            })
            .collect())
    }

    /// The queue and the user of each consumer on `vhost`.
    pub async fn consumers(&self, vhost: &str) -> Result<Vec<(String, String)>, ManagementError> {
        let consumers: Vec<serde_json::Value> =
            self.get(&format!("consumers/{}", encode(vhost))).await?;
        Ok(consumers
            .iter()
            .map(|c| {
                let field =
                    |value: &serde_json::Value| value.as_str().unwrap_or_default().to_owned();
                (
                    field(&c["queue"]["name"]),
                    field(&c["channel_details"]["user"]),
                )
            })
            .collect())
    }

    async fn connections(&self, vhost: &str) -> Result<Vec<serde_json::Value>, ManagementError> {
        self.get(&format!("vhosts/{}/connections", encode(vhost)))
            .await
    }

    /// A GET of the management API, its JSON answer decoded.
    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, ManagementError> {
        Ok(self
            .send(reqwest::Method::GET, path, None)
            .await?
            .json()
            .await?)
    }

    /// Messages in a queue, ready and unacknowledged, as the management
    /// statistics last saw them (they lag by the broker's collection
    /// interval, 5 s by default); `None` before the first statistics.
    pub async fn queue_messages(
        &self,
        vhost: &str,
        queue: &str,
    ) -> Result<Option<u64>, ManagementError> {
        let queue: serde_json::Value = self
            .get(&format!(
                "queues/{}/{}?columns=messages",
                encode(vhost),
                encode(queue)
            ))
            .await?;
        Ok(queue["messages"].as_u64())
    }

    /// The names of every vhost.
    pub async fn vhost_names(&self) -> Result<Vec<String>, ManagementError> {
        self.names("vhosts").await
    }

    /// The names of every user.
    pub async fn user_names(&self) -> Result<Vec<String>, ManagementError> {
        self.names("users").await
    }

    async fn names(&self, collection: &str) -> Result<Vec<String>, ManagementError> {
        let items: Vec<ConnectionInfo> = self.get(collection).await?;
        Ok(items.into_iter().map(|item| item.name).collect())
    }

    /// Forcibly closes every client connection to `vhost`; returns how many.
    pub async fn close_connections(&self, vhost: &str) -> Result<usize, ManagementError> {
        let connections: Vec<ConnectionInfo> = self
            .get(&format!("vhosts/{}/connections", encode(vhost)))
            .await?;
        for connection in &connections {
            self.send(
                reqwest::Method::DELETE,
                &format!("connections/{}", encode(&connection.name)),
                None,
            )
            .await?;
        }
        Ok(connections.len())
    }

    /// Creates `vhost` and, from the definitions, its users (named with
    /// `user_prefix`, password from `password_of`), permissions, topic
    /// permissions and policies: the definitions file's access rules and
    /// bounds, in another vhost.
    pub async fn provision(
        &self,
        vhost: &str,
        definitions: &Definitions,
        user_prefix: &str,
        password_of: impl Fn(&str) -> String,
    ) -> Result<(), ManagementError> {
        self.create_vhost(vhost).await?;
        let field = |value: &serde_json::Value, name: &str| {
            value[name].as_str().unwrap_or_default().to_owned()
        };
        for user in &definitions.users {
            let name = field(user, "name");
            self.put_user(&format!("{user_prefix}{name}"), &password_of(&name))
                .await?;
        }
        for p in &definitions.permissions {
            let user = format!("{user_prefix}{}", field(p, "user"));
            self.set_permissions(
                vhost,
                &user,
                &field(p, "configure"),
                &field(p, "write"),
                &field(p, "read"),
            )
            .await?;
        }
        for p in &definitions.topic_permissions {
            let user = format!("{user_prefix}{}", field(p, "user"));
            self.set_topic_permissions(
                vhost,
                &user,
                &field(p, "exchange"),
                &field(p, "write"),
                &field(p, "read"),
            )
            .await?;
        }
        for policy in &definitions.policies {
            self.set_policy(
                vhost,
                &field(policy, "name"),
                &field(policy, "pattern"),
                &field(policy, "apply-to"),
                &policy["definition"],
            )
            .await?;
        }
        Ok(())
    }
}

//! Sections that configure the distributed configuration store: `etcd`, `etcd3`, `consul`, `zookeeper`,
//! `exhibitor`, `kubernetes`, `raft`.

use crate::convert::{section, StringList};
use crate::units::Duration;
use serde_json::{Map, Value};

section! {
    /// `etcd` (API v2) and `etcd3` (API v3) sections; both take the same keys.
    #[derive(Default)]
    pub struct EtcdConfig {
        /// `host:port` of one etcd endpoint.
        host: Option<String>,
        /// Several endpoints, as a list or a comma-separated string.
        hosts: Option<StringList>,
        /// Treat `hosts` as proxies: no topology discovery.
        use_proxies: Option<bool>,
        /// `http(s)://host:port`.
        url: Option<String>,
        /// Proxy URL, used instead of `url`.
        proxy: Option<String>,
        /// Domain for SRV discovery.
        srv: Option<String>,
        /// Suffix for SRV names.
        srv_suffix: Option<String>,
        /// `http` or `https`.
        protocol: Option<String>,
        /// Authentication user.
        username: Option<String>,
        /// Authentication password.
        password: Option<String>,
        /// CA certificate file.
        cacert: Option<String>,
        /// Client certificate file.
        cert: Option<String>,
        /// Client key file.
        key: Option<String>,
    }
}

/// The `etcd3` section has exactly the keys of `etcd`.
pub type Etcd3Config = EtcdConfig;

section! {
    /// `consul` section.
    #[derive(Default)]
    pub struct ConsulConfig {
        /// `host:port` of the local agent.
        host: Option<String>,
        /// `http(s)://host:port` of the local agent.
        url: Option<String>,
        /// Agent port.
        port: Option<u16>,
        /// `http` or `https`.
        scheme: Option<String>,
        /// ACL token.
        token: Option<String>,
        /// Verify the server certificate.
        verify: Option<bool>,
        /// CA certificate file.
        cacert: Option<String>,
        /// Client certificate file.
        cert: Option<String>,
        /// Client key file.
        key: Option<String>,
        /// Datacenter.
        dc: Option<String>,
        /// `default`, `consistent` or `stale`.
        consistency: Option<String>,
        /// Health checks used for the session.
        checks: Option<Vec<String>>,
        /// Register a service named after the scope.
        register_service: Option<bool>,
        /// Extra static service tags.
        service_tags: Option<Vec<String>>,
        /// Health-check interval of the registered service (default `5s`).
        service_check_interval: Option<Duration>,
        /// SNI override for the TLS health check.
        service_check_tls_server_name: Option<String>,
    }
}

section! {
    /// `zookeeper` section.
    #[derive(Default)]
    pub struct ZooKeeperConfig {
        /// `host:port` members, as a list or a comma-separated string.
        hosts: Option<StringList>,
        /// Use TLS.
        use_ssl: Option<bool>,
        /// CA certificate file.
        cacert: Option<String>,
        /// Client certificate file.
        cert: Option<String>,
        /// Client key file.
        key: Option<String>,
        /// Client key password.
        key_password: Option<String>,
        /// Verify the server certificate (default true).
        verify: Option<bool>,
        /// x509 principal → permissions applied to created znodes.
        set_acls: Option<Map<String, Value>>,
        /// Authentication scheme → credentials added to the session.
        auth_data: Option<Map<String, Value>>,
    }
}

section! {
    /// `exhibitor` section.
    #[derive(Default)]
    pub struct ExhibitorConfig {
        /// Initial Exhibitor nodes.
        hosts: Option<StringList>,
        /// How often the node list is refreshed.
        poll_interval: Option<Duration>,
        /// Exhibitor port.
        port: Option<u16>,
    }
}

section! {
    /// `kubernetes` section.
    #[derive(Default)]
    pub struct KubernetesConfig {
        /// Connect to the API nodes behind the `kubernetes` service directly.
        bypass_api_service: Option<bool>,
        /// Kubernetes namespace (default `default`).
        namespace: Option<String>,
        /// Labels identifying this cluster's objects.
        labels: Option<Map<String, Value>>,
        /// Label holding the cluster name (default `cluster-name`).
        scope_label: Option<String>,
        /// Label holding the role (default `role`).
        role_label: Option<String>,
        /// Role label value of the leader (default `primary`/`master`).
        leader_label_value: Option<String>,
        /// Role label value of replicas (default `replica`).
        follower_label_value: Option<String>,
        /// Role label value of a standby leader.
        standby_leader_label_value: Option<String>,
        /// Temporary role label name.
        tmp_role_label: Option<String>,
        /// Use Endpoints instead of ConfigMaps.
        use_endpoints: Option<bool>,
        /// The pod's IP (required with `use_endpoints`).
        pod_ip: Option<String>,
        /// Named ports for the leader Endpoint.
        ports: Option<Vec<Value>>,
        /// CA bundle for the API server.
        cacert: Option<String>,
        /// HTTP status codes to retry on.
        retriable_http_codes: Option<Vec<u16>>,
        /// kubeconfig context.
        context: Option<String>,
        /// Labels set on the pod while bootstrapping.
        bootstrap_labels: Option<Map<String, Value>>,
    }
}

section! {
    /// `raft` section (deprecated in Patroni, kept readable).
    #[derive(Default)]
    pub struct RaftConfig {
        /// `ip:port` other nodes reach this one on.
        self_addr: Option<String>,
        /// `ip:port` to listen on (default `self_addr`).
        bind_addr: Option<String>,
        /// Other nodes, as a list or a comma-separated string.
        partner_addrs: Option<StringList>,
        /// Where the Raft log and snapshots live.
        data_dir: Option<String>,
        /// Traffic encryption password.
        password: Option<String>,
    }
}

//! The `restapi` and `ctl` sections.

use crate::convert::{section, string_enum};
use serde_json::{Map, Value};

section! {
    /// Basic-auth credentials (`restapi.authentication`, `ctl.authentication`).
    #[derive(Default)]
    pub struct BasicAuth {
        /// User name.
        username: Option<String>,
        /// Password.
        password: Option<String>,
    }
}

string_enum! {
    /// `restapi.verify_client`.
    pub enum VerifyClient ("one of") {
        /// Client certificates are not checked (default).
        None = "none",
        /// Certificates are required for unsafe endpoints.
        Optional = "optional",
        /// Certificates are required for every call.
        Required = "required",
    }
}

section! {
    /// `restapi` section.
    #[derive(Default)]
    pub struct RestApiConfig {
        /// `host:port` the REST API listens on.
        listen: Option<String>,
        /// `host:port` other members use to reach this REST API; stored in the member key.
        connect_address: Option<String>,
        /// Address of a proxy in front of the REST API.
        proxy_address: Option<String>,
        /// Basic auth protecting unsafe endpoints.
        authentication: Option<BasicAuth>,
        /// Server certificate (PEM); TLS is off without it.
        certfile: Option<String>,
        /// Server key (PEM).
        keyfile: Option<String>,
        /// Password of an encrypted `keyfile`.
        keyfile_password: Option<String>,
        /// CA bundle for client certificates.
        cafile: Option<String>,
        /// Allowed cipher suites.
        ciphers: Option<String>,
        /// Client certificate policy.
        verify_client: Option<VerifyClient>,
        /// Hosts/networks allowed to call unsafe endpoints.
        allowlist: Option<Vec<String>>,
        /// Also allow the cluster's members.
        allowlist_include_members: Option<bool>,
        /// Headers added to every response.
        http_extra_headers: Option<Map<String, Value>>,
        /// Headers added to every TLS response.
        https_extra_headers: Option<Map<String, Value>>,
        /// Listen backlog (default 5).
        request_queue_size: Option<u32>,
        /// `Server` header style: `original`, `productonly` or `minimal`.
        server_tokens: Option<String>,
        /// Python Patroni's REST thread pool size; accepted so existing files load, it has no effect here.
        thread_pool_size: Option<u32>,
    }
}

section! {
    /// `ctl` section, read by `patronictl`.
    #[derive(Default)]
    pub struct CtlConfig {
        /// Skip TLS verification of the REST API.
        insecure: Option<bool>,
        /// Client certificate.
        certfile: Option<String>,
        /// Client key.
        keyfile: Option<String>,
        /// Password of an encrypted `keyfile`.
        keyfile_password: Option<String>,
        /// CA bundle (file or directory) to verify the REST API.
        cacert: Option<String>,
        /// Basic-auth credentials for the REST API.
        authentication: Option<BasicAuth>,
    }
}

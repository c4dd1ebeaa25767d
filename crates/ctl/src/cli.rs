//! Command line of `patronictl`: the same commands, options and defaults as Patroni's click interface.

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "patronictl", about = "Command-line interface for interacting with Patroni.", version = None)]
pub struct Cli {
    /// Configuration file
    #[arg(short = 'c', long = "config-file", env = "PATRONICTL_CONFIG_FILE")]
    pub config_file: Option<String>,
    /// The DCS connect url
    #[arg(short = 'd', long = "dcs-url", visible_alias = "dcs", env = "DCS_URL")]
    pub dcs_url: Option<String>,
    /// Allow connections to SSL sites without certs
    #[arg(short = 'k', long = "insecure")]
    pub insecure: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// `-r/--role` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    Leader,
    Primary,
    #[value(name = "standby-leader")]
    StandbyLeader,
    Replica,
    Standby,
    Any,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Primary => "primary",
            Role::StandbyLeader => "standby-leader",
            Role::Replica => "replica",
            Role::Standby => "standby",
            Role::Any => "any",
        }
    }
}

/// `-f/--format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Fmt {
    Pretty,
    Tsv,
    Json,
    Yaml,
    Yml,
}

impl Fmt {
    pub fn format(self) -> crate::output::Format {
        use crate::output::Format;
        match self {
            Fmt::Pretty => Format::Pretty,
            Fmt::Tsv => Format::Tsv,
            Fmt::Json => Format::Json,
            Fmt::Yaml | Fmt::Yml => Format::Yaml,
        }
    }
}

#[derive(Debug, Args, Clone, Copy, Default)]
pub struct Watch {
    /// Auto update the screen every 2 seconds
    #[arg(short = 'W')]
    pub w: bool,
    /// Auto update the screen every X seconds
    #[arg(short = 'w', long = "watch")]
    pub watch: Option<f64>,
}

impl Watch {
    pub fn interval(&self) -> Option<f64> {
        match (self.watch, self.w) {
            (Some(s), _) if s > 0.0 => Some(s),
            (_, true) => Some(2.0),
            _ => None,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a dsn for the provided member, defaults to a dsn of the leader
    Dsn {
        cluster_name: Option<String>,
        /// Citus group
        #[arg(long)]
        group: Option<u32>,
        /// Give a dsn of any member with this role
        #[arg(short = 'r', long)]
        role: Option<Role>,
        /// Generate a dsn for this member
        #[arg(short = 'm', long)]
        member: Option<String>,
    },
    /// Query a Patroni PostgreSQL member
    Query {
        cluster_name: Option<String>,
        #[arg(long)]
        group: Option<u32>,
        /// Output format (pretty, tsv, json, yaml)
        #[arg(long = "format", default_value = "tsv")]
        fmt: Fmt,
        /// Execute the SQL commands from this file
        #[arg(short = 'f', long = "file")]
        file: Option<String>,
        /// force password prompt
        #[arg(long)]
        password: bool,
        /// database user name
        #[arg(short = 'U', long)]
        username: Option<String>,
        #[command(flatten)]
        watch: Watch,
        /// The role of the query
        #[arg(short = 'r', long)]
        role: Option<Role>,
        /// Query a specific member
        #[arg(short = 'm', long)]
        member: Option<String>,
        /// The column delimiter
        #[arg(long, default_value = "\t")]
        delimiter: String,
        /// The SQL commands to execute
        #[arg(short = 'c', long)]
        command: Option<String>,
        /// database name to connect to
        #[arg(short = 'd', long)]
        dbname: Option<String>,
    },
    /// Remove cluster from DCS
    Remove {
        cluster_name: String,
        #[arg(long)]
        group: Option<u32>,
        /// Output format
        #[arg(short = 'f', long = "format", default_value = "pretty")]
        fmt: Fmt,
    },
    /// Reload cluster member configuration
    Reload {
        cluster_name: String,
        member_names: Vec<String>,
        #[arg(long)]
        group: Option<u32>,
        /// Reload only members with this role
        #[arg(short = 'r', long, default_value = "any")]
        role: Role,
        /// Do not ask for confirmation at any point
        #[arg(long)]
        force: bool,
    },
    /// Restart cluster member
    Restart {
        cluster_name: String,
        member_names: Vec<String>,
        #[arg(long)]
        group: Option<u32>,
        /// Restart only members with this role
        #[arg(short = 'r', long, default_value = "any")]
        role: Role,
        /// Restart a single member only
        #[arg(long = "any")]
        any: bool,
        /// Timestamp of a scheduled restart in unambiguous format (e.g. ISO 8601)
        #[arg(long)]
        scheduled: Option<String>,
        /// Restart if the PostgreSQL version is less than provided (e.g. 9.5.2)
        #[arg(long = "pg-version")]
        pg_version: Option<String>,
        /// Restart if pending
        #[arg(long)]
        pending: bool,
        /// Return error and fail over if necessary when restarting takes longer than this.
        #[arg(long)]
        timeout: Option<String>,
        /// Do not ask for confirmation at any point
        #[arg(long)]
        force: bool,
    },
    /// Reinitialize cluster member
    Reinit {
        cluster_name: String,
        member_names: Vec<String>,
        #[arg(long)]
        group: Option<u32>,
        /// Do not ask for confirmation at any point
        #[arg(long)]
        force: bool,
        /// Get basebackup from leader
        #[arg(long = "from-leader")]
        from_leader: bool,
        /// Wait until reinitialization completes
        #[arg(long)]
        wait: bool,
    },
    /// Failover to a replica
    Failover {
        cluster_name: Option<String>,
        #[arg(long)]
        group: Option<u32>,
        /// The name of the current leader (deprecated: makes it a switchover)
        #[arg(long = "leader", visible_alias = "primary", hide = true)]
        leader: Option<String>,
        /// The name of the candidate
        #[arg(long)]
        candidate: Option<String>,
        /// Do not ask for confirmation at any point
        #[arg(long)]
        force: bool,
    },
    /// Switchover to a replica
    Switchover {
        cluster_name: Option<String>,
        #[arg(long)]
        group: Option<u32>,
        /// The name of the current leader
        #[arg(long = "leader", visible_alias = "primary")]
        leader: Option<String>,
        /// The name of the candidate
        #[arg(long)]
        candidate: Option<String>,
        /// Timestamp of a scheduled switchover in unambiguous format (e.g. ISO 8601)
        #[arg(long)]
        scheduled: Option<String>,
        /// Do not ask for confirmation at any point
        #[arg(long)]
        force: bool,
    },
    /// List the Patroni members for a given Patroni
    #[command(alias = "members")]
    List {
        cluster_names: Vec<String>,
        #[arg(long)]
        group: Option<u32>,
        /// Show some extra information
        #[arg(short = 'e', long)]
        extended: bool,
        /// Print timestamp
        #[arg(short = 't', long = "timestamp")]
        timestamp: bool,
        /// Output format
        #[arg(short = 'f', long = "format", default_value = "pretty")]
        fmt: Fmt,
        #[command(flatten)]
        watch: Watch,
    },
    /// Prints ASCII topology for given cluster
    Topology {
        cluster_names: Vec<String>,
        #[arg(long)]
        group: Option<u32>,
        #[command(flatten)]
        watch: Watch,
    },
    /// Discard scheduled events
    Flush {
        /// CLUSTER_NAME [MEMBER_NAMES]... {restart|switchover}
        #[arg(required = true, num_args = 2..)]
        args: Vec<String>,
        #[arg(long)]
        group: Option<u32>,
        /// Flush only members with this role
        #[arg(short = 'r', long, default_value = "any")]
        role: Role,
        /// Do not ask for confirmation at any point
        #[arg(long)]
        force: bool,
    },
    /// Disable auto failover
    Pause {
        cluster_name: Option<String>,
        #[arg(long)]
        group: Option<u32>,
        /// Wait until pause is applied on all nodes
        #[arg(long)]
        wait: bool,
    },
    /// Resume auto failover
    Resume {
        cluster_name: Option<String>,
        #[arg(long)]
        group: Option<u32>,
        /// Wait until pause is cleared on all nodes
        #[arg(long)]
        wait: bool,
    },
    /// Edit cluster configuration
    EditConfig {
        cluster_name: Option<String>,
        #[arg(long)]
        group: Option<u32>,
        /// Do not show changes
        #[arg(short = 'q', long)]
        quiet: bool,
        /// Set specific configuration value. Can be specified multiple times
        #[arg(short = 's', long = "set")]
        kvpairs: Vec<String>,
        /// Set specific PostgreSQL parameter value. Shorthand for -s postgresql.parameters. Can be specified
        /// multiple times
        #[arg(short = 'p', long = "pg")]
        pgkvpairs: Vec<String>,
        /// Apply configuration from file. Use - for stdin.
        #[arg(long = "apply")]
        apply: Option<String>,
        /// Apply configuration from file, replacing existing configuration. Use - for stdin.
        #[arg(long = "replace")]
        replace: Option<String>,
        /// Do not ask for confirmation at any point
        #[arg(long)]
        force: bool,
    },
    /// Show cluster configuration
    ShowConfig {
        cluster_name: Option<String>,
        #[arg(long)]
        group: Option<u32>,
    },
    /// Output version of patronictl command or a running Patroni instance
    Version {
        cluster_name: Option<String>,
        member_names: Vec<String>,
        #[arg(long)]
        group: Option<u32>,
    },
    /// Demote cluster to a standby cluster
    DemoteCluster {
        cluster_name: Option<String>,
        /// Do not ask for confirmation at any point
        #[arg(long)]
        force: bool,
        /// Address of the remote node
        #[arg(long)]
        host: Option<String>,
        /// Port of the remote node
        #[arg(long)]
        port: Option<u16>,
        /// Command to restore WAL records from the remote primary
        #[arg(long = "restore-command")]
        restore_command: Option<String>,
        /// Name of the slot on the remote node to use for replication
        #[arg(long = "primary-slot-name")]
        primary_slot_name: Option<String>,
    },
    /// Promote cluster, make it run standalone
    PromoteCluster {
        cluster_name: Option<String>,
        /// Do not ask for confirmation at any point
        #[arg(long)]
        force: bool,
    },
    /// Show the history of failovers/switchovers
    History {
        cluster_name: Option<String>,
        #[arg(long)]
        group: Option<u32>,
        /// Output format
        #[arg(short = 'f', long = "format", default_value = "pretty")]
        fmt: Fmt,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        match Cli::try_parse_from(std::iter::once("patronictl").chain(args.iter().copied())) {
            Ok(c) => c,
            Err(e) => panic!("{args:?}: {e}"),
        }
    }

    #[test]
    fn global_options_before_the_command() {
        let c = parse(&["-c", "p.yml", "-d", "etcd3://h:2379", "-k", "list"]);
        assert_eq!(c.config_file.as_deref(), Some("p.yml"));
        assert_eq!(c.dcs_url.as_deref(), Some("etcd3://h:2379"));
        assert!(c.insecure);
        let c = parse(&["--dcs", "etcd3://h", "list", "demo", "-e", "-f", "json", "-W"]);
        match c.command {
            Command::List { cluster_names, extended, fmt, watch, .. } => {
                assert_eq!(cluster_names, vec!["demo"]);
                assert!(extended);
                assert_eq!(fmt, Fmt::Json);
                assert_eq!(watch.interval(), Some(2.0));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn switchover_and_failover_options() {
        let c =
            parse(&["switchover", "demo", "--primary", "pg1", "--candidate", "pg2", "--scheduled", "now", "--force"]);
        match c.command {
            Command::Switchover { cluster_name, leader, candidate, scheduled, force, .. } => {
                assert_eq!(cluster_name.as_deref(), Some("demo"));
                assert_eq!(leader.as_deref(), Some("pg1"));
                assert_eq!(candidate.as_deref(), Some("pg2"));
                assert_eq!(scheduled.as_deref(), Some("now"));
                assert!(force);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse(&["failover", "--candidate", "pg2"]).command, Command::Failover { .. }));
    }

    #[test]
    fn member_commands() {
        match parse(&[
            "restart",
            "demo",
            "pg1",
            "pg2",
            "-r",
            "replica",
            "--any",
            "--pg-version",
            "15.0",
            "--pending",
            "--timeout",
            "30",
            "--scheduled",
            "2030-01-01T00:00",
            "--force",
        ])
        .command
        {
            Command::Restart { member_names, role, any, pending, .. } => {
                assert_eq!(member_names, vec!["pg1", "pg2"]);
                assert_eq!(role, Role::Replica);
                assert!(any && pending);
            }
            other => panic!("{other:?}"),
        }
        match parse(&["flush", "demo", "pg1", "restart", "--force"]).command {
            Command::Flush { args, force, .. } => {
                assert_eq!(args, vec!["demo", "pg1", "restart"]);
                assert!(force);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse(&["reinit", "demo", "pg2", "--wait", "--force"]).command, Command::Reinit { .. }));
        assert!(matches!(parse(&["reload", "demo", "-r", "standby-leader"]).command, Command::Reload { .. }));
        assert!(Cli::try_parse_from(["patronictl", "reload", "demo", "-r", "boss"]).is_err());
    }

    #[test]
    fn edit_config_and_query() {
        match parse(&[
            "edit-config",
            "demo",
            "-s",
            "ttl=40",
            "--set",
            "loop_wait=5",
            "-p",
            "max_connections=200",
            "--apply",
            "-",
            "-q",
            "--force",
        ])
        .command
        {
            Command::EditConfig { kvpairs, pgkvpairs, apply, quiet, force, .. } => {
                assert_eq!(kvpairs, vec!["ttl=40", "loop_wait=5"]);
                assert_eq!(pgkvpairs, vec!["max_connections=200"]);
                assert_eq!(apply.as_deref(), Some("-"));
                assert!(quiet && force);
            }
            other => panic!("{other:?}"),
        }
        match parse(&["query", "demo", "-U", "postgres", "-d", "db", "-c", "select 1", "--format", "json", "-w", "1.5"])
            .command
        {
            Command::Query { username, dbname, command, fmt, watch, .. } => {
                assert_eq!(username.as_deref(), Some("postgres"));
                assert_eq!(dbname.as_deref(), Some("db"));
                assert_eq!(command.as_deref(), Some("select 1"));
                assert_eq!(fmt, Fmt::Json);
                assert_eq!(watch.interval(), Some(1.5));
            }
            other => panic!("{other:?}"),
        }
    }
}

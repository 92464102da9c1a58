//! The change-capture hook of the MySQL store: where its binlog
//! connection goes (the store's URL, opened by `mysql_async` beside the
//! sqlx pool) and the [`MySqlChangeSource`] it hands out.

use std::sync::Arc;

use mysql_async::{Opts, OptsBuilder};

use super::config::MySqlConfig;
use crate::Result;
use crate::backends::sql::SslMode;
use crate::store::EntityInfo;
use crate::sync::capture::ChangeSource;
use crate::sync::capture::mysql::{MapErr, MySqlChangeSource};

/// What the store keeps to open binlog connections.
pub(super) struct BinlogTarget {
    /// The store's URL (with its password; never shown).
    url: String,
    /// The database the pool uses, when the config names it apart.
    database: Option<String>,
    /// The store asks for TLS, which the binlog connection cannot give yet.
    tls: bool,
}

impl BinlogTarget {
    pub(super) fn new(config: &MySqlConfig) -> Self {
        let url = config.mysql_url();
        let query = url.split_once('?').map(|(_, q)| q.to_ascii_lowercase());
        let tls_in_url = query.is_some_and(|q| {
            [
                "ssl-mode=required",
                "ssl-mode=verify_ca",
                "ssl-mode=verify_identity",
            ]
            .iter()
            .any(|m| q.contains(m))
        });
        let tls_in_config = matches!(
            config.ssl_mode,
            Some(SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull)
        );
        BinlogTarget {
            url,
            database: config.database.clone(),
            tls: tls_in_url || tls_in_config,
        }
    }

    /// The binlog connection's options: the URL's user, password, host and
    /// port (its sqlx query parameters dropped), always over TCP.
    fn opts(&self) -> std::result::Result<Opts, String> {
        let base = self
            .url
            .split_once('?')
            .map_or(self.url.as_str(), |(b, _)| b);
        let opts = Opts::from_url(base)
            .map_err(|e| format!("the store's URL cannot open a binlog connection: {e}"))?;
        let mut b = OptsBuilder::from_opts(opts).prefer_socket(false);
        if let Some(db) = &self.database {
            b = b.db_name(Some(db.clone()));
        }
        Ok(b.into())
    }

    /// The change source of `entity` reading `slot`.
    pub(super) fn source(
        &self,
        store: &str,
        pool: sqlx::mysql::MySqlPool,
        entity: &EntityInfo,
        slot: &str,
        map_err: MapErr,
    ) -> Result<Arc<dyn ChangeSource>> {
        if self.tls {
            return Err(crate::Error::unsupported(
                store,
                entity.name(),
                "change capture: the store requires TLS (`ssl_mode`), but the binlog connection is not encrypted yet; capture from a server reached without TLS requirement, or use `outbox`",
            ));
        }
        let opts = self
            .opts()
            .map_err(|m| crate::Error::invalid_input(store, entity.name(), m))?;
        Ok(Arc::new(MySqlChangeSource::new(
            store,
            pool,
            opts,
            entity.clone(),
            slot,
            map_err,
        )))
    }
}

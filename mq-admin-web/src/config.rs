//! Where and how a site listens, the rules that configuration must keep,
//! and why a server did not start.

use std::fmt;
use std::marker::PhantomData;
use std::net::SocketAddr;

use crate::{Gate, Site};

/// Where and how a site's server listens. `S` gives the default address
/// and the flag named in errors.
///
/// # Examples
///
/// ```
/// # use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
/// # struct Demo;
/// # impl mq_admin_web::Site for Demo {
/// #     const PRODUCT: &'static str = "demo";
/// #     const NAV: &'static [(&'static str, &'static str)] = &[("/", "Home")];
/// #     const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7000));
/// #     const OPEN_READS_FLAG: &'static str = "--open-reads";
/// #     const TOKEN_HINT: &'static str = "";
/// # }
/// use mq_admin_web::Config;
/// let c = Config::<Demo>::default().token("s3cret-token").open_reads(true);
/// assert!(c.validate().is_ok());
/// assert!(!format!("{c:?}").contains("s3cret-token"));
/// ```
#[non_exhaustive]
pub struct Config<S: Site> {
    /// Address to listen on. Default [`Site::DEFAULT_LISTEN`].
    pub listen: SocketAddr,
    /// The admin token: needed for every action, and for reads unless
    /// `open_reads`. Default none (then reads must be open and there are
    /// no actions).
    pub admin_token: Option<String>,
    /// Let anyone who can reach the (loopback) address read the pages and
    /// the JSON reads without the token. Default false.
    pub open_reads: bool,
    site: PhantomData<fn() -> S>,
}

impl<S: Site> Default for Config<S> {
    fn default() -> Self {
        Self {
            listen: S::DEFAULT_LISTEN,
            admin_token: None,
            open_reads: false,
            site: PhantomData,
        }
    }
}

impl<S: Site> Clone for Config<S> {
    fn clone(&self) -> Self {
        Self {
            listen: self.listen,
            admin_token: self.admin_token.clone(),
            open_reads: self.open_reads,
            site: PhantomData,
        }
    }
}

impl<S: Site> fmt::Debug for Config<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("site", &S::PRODUCT)
            .field("listen", &self.listen)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<hidden>"),
            )
            .field("open_reads", &self.open_reads)
            .finish()
    }
}

impl<S: Site> Config<S> {
    /// Sets the listen address.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
    /// # struct Demo;
    /// # impl mq_admin_web::Site for Demo {
    /// #     const PRODUCT: &'static str = "demo";
    /// #     const NAV: &'static [(&'static str, &'static str)] = &[("/", "Home")];
    /// #     const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7000));
    /// #     const OPEN_READS_FLAG: &'static str = "--open-reads";
    /// #     const TOKEN_HINT: &'static str = "";
    /// # }
    /// let c = mq_admin_web::Config::<Demo>::default().listen(([127, 0, 0, 1], 0).into());
    /// assert_eq!(c.listen.port(), 0);
    /// ```
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Sets the admin token.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
    /// # struct Demo;
    /// # impl mq_admin_web::Site for Demo {
    /// #     const PRODUCT: &'static str = "demo";
    /// #     const NAV: &'static [(&'static str, &'static str)] = &[("/", "Home")];
    /// #     const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7000));
    /// #     const OPEN_READS_FLAG: &'static str = "--open-reads";
    /// #     const TOKEN_HINT: &'static str = "";
    /// # }
    /// let c = mq_admin_web::Config::<Demo>::default().token("s3cret-token");
    /// assert!(c.admin_token.is_some());
    /// ```
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.admin_token = Some(token.into());
        self
    }

    /// Opens reads without the token (loopback only).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
    /// # struct Demo;
    /// # impl mq_admin_web::Site for Demo {
    /// #     const PRODUCT: &'static str = "demo";
    /// #     const NAV: &'static [(&'static str, &'static str)] = &[("/", "Home")];
    /// #     const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7000));
    /// #     const OPEN_READS_FLAG: &'static str = "--open-reads";
    /// #     const TOKEN_HINT: &'static str = "";
    /// # }
    /// let c = mq_admin_web::Config::<Demo>::default().open_reads(true);
    /// assert!(c.validate().is_ok());
    /// ```
    pub fn open_reads(mut self, open: bool) -> Self {
        self.open_reads = open;
        self
    }

    /// Checks the rules of the crate docs: a token of at least 8 bytes
    /// without control characters, or open reads; a non-loopback address
    /// needs a token and refuses open reads.
    ///
    /// # Errors
    ///
    /// [`StartError::Config`] with the reason.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
    /// # struct Demo;
    /// # impl mq_admin_web::Site for Demo {
    /// #     const PRODUCT: &'static str = "demo";
    /// #     const NAV: &'static [(&'static str, &'static str)] = &[("/", "Home")];
    /// #     const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7000));
    /// #     const OPEN_READS_FLAG: &'static str = "--open-reads";
    /// #     const TOKEN_HINT: &'static str = "";
    /// # }
    /// use mq_admin_web::Config;
    /// // Nothing could be read or done:
    /// assert!(Config::<Demo>::default().validate().is_err());
    /// // Open reads on a public address:
    /// let c = Config::<Demo>::default().listen(([0, 0, 0, 0], 7000).into()).token("t-123456").open_reads(true);
    /// assert!(c.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<(), StartError> {
        let err = |s: String| Err(StartError::Config(s));
        match &self.admin_token {
            Some(t) if t.len() < 8 => return err("the admin token must be at least 8 bytes".into()),
            Some(t) if t.chars().any(char::is_control) => {
                return err("the admin token must not contain control characters".into())
            }
            None if !self.open_reads => {
                return err(format!(
                    "give an admin token, or open reads on loopback ({})",
                    S::OPEN_READS_FLAG
                ))
            }
            _ => {}
        }
        if !self.listen.ip().is_loopback() {
            if self.admin_token.is_none() {
                return err("a non-loopback admin address needs an admin token".into());
            }
            if self.open_reads {
                return err("open reads are allowed on a loopback admin address only".into());
            }
        }
        Ok(())
    }

    /// A [`Gate`] keeping this configuration's token and open reads, with
    /// no session yet.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
    /// # struct Demo;
    /// # impl mq_admin_web::Site for Demo {
    /// #     const PRODUCT: &'static str = "demo";
    /// #     const NAV: &'static [(&'static str, &'static str)] = &[("/", "Home")];
    /// #     const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7000));
    /// #     const OPEN_READS_FLAG: &'static str = "--open-reads";
    /// #     const TOKEN_HINT: &'static str = "";
    /// # }
    /// let gate = mq_admin_web::Config::<Demo>::default().open_reads(true).gate();
    /// assert!(gate.may_read(&Default::default()).is_ok());
    /// ```
    pub fn gate(&self) -> Gate {
        Gate::new(self.admin_token.clone(), self.open_reads)
    }
}

/// Why a site's server did not start.
///
/// # Examples
///
/// ```
/// let e = mq_admin_web::StartError::Config("the admin token must be at least 8 bytes".into());
/// assert!(e.to_string().contains("admin token"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration breaks a rule; fix it.
    #[error("admin config: {0}")]
    Config(String),
    /// The address could not be bound (in use, or not ours).
    #[error("cannot bind the admin address {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::TestSite;

    #[test]
    fn rules() {
        let c = Config::<TestSite>::default();
        assert_eq!(c.listen, TestSite::DEFAULT_LISTEN);
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("--open-reads"), "{e}");
        assert!(c.clone().token("short").validate().is_err());
        assert!(c.clone().token("long-enough\n").validate().is_err());
        assert!(c.clone().token("long-enough").validate().is_ok());
        let public = c.listen(([0, 0, 0, 0], 1).into());
        assert!(public.clone().open_reads(true).validate().is_err());
        assert!(public
            .clone()
            .token("long-enough")
            .open_reads(true)
            .validate()
            .is_err());
        assert!(public.token("long-enough").validate().is_ok());
    }
}

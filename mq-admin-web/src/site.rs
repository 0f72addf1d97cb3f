//! What a product says about itself: the one place the broker's admin
//! pages and the outbox's page differ in the shared parts.

use std::net::SocketAddr;

/// A product that serves admin pages: its name, navigation and defaults.
/// A unit struct implements it; [`Config`](crate::Config), the page frame
/// and the shared pages take it as a type parameter.
///
/// # Examples
///
/// ```
/// use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
/// struct Demo;
/// impl mq_admin_web::Site for Demo {
///     const PRODUCT: &'static str = "demo";
///     const NAV: &'static [(&'static str, &'static str)] = &[("/", "Home")];
///     const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7000));
///     const OPEN_READS_FLAG: &'static str = "--open-reads";
///     const TOKEN_HINT: &'static str = "The token given to <code>demo --admin-token</code>.";
/// }
/// let c = mq_admin_web::Config::<Demo>::default();
/// assert_eq!(c.listen.port(), 7000);
/// ```
pub trait Site: Send + Sync + 'static {
    /// The product's name, in every page's header and title.
    const PRODUCT: &'static str;
    /// The navigation bar: `(href, label)`, the first being the start page.
    const NAV: &'static [(&'static str, &'static str)];
    /// [`Config::listen`](crate::Config::listen)'s default.
    const DEFAULT_LISTEN: SocketAddr;
    /// The command-line flag that opens reads, named in the configuration
    /// error that asks for a token or open reads.
    const OPEN_READS_FLAG: &'static str;
    /// HTML under the sign-in form saying where the token comes from
    /// (trusted: it is not escaped).
    const TOKEN_HINT: &'static str;
}

/// The site of this crate's own examples and tests.
#[cfg(test)]
pub(crate) struct TestSite;

#[cfg(test)]
impl Site for TestSite {
    const PRODUCT: &'static str = "test";
    const NAV: &'static [(&'static str, &'static str)] = &[("/", "Home"), ("/b", "B")];
    const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
        std::net::Ipv4Addr::LOCALHOST,
        7000,
    ));
    const OPEN_READS_FLAG: &'static str = "--open-reads";
    const TOKEN_HINT: &'static str = "<code>--admin-token</code>";
}

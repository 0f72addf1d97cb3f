//! The pages' frame: layout, style, the refresh script, escaping and
//! number formatting. No build step: the style and the one small script
//! are inline, and every page works without the script (it only refreshes
//! the numbers in place).

use std::fmt::Write;

use crate::{Caller, Site};

/// The style every site shares.
const CSS: &str = r#"
:root{--bg:#f5f6f8;--fg:#1d2330;--mut:#5b6475;--line:#dfe3ea;--card:#fff;--acc:#2f5bd3;--bad:#b3261e;--ok:#1e7a3c;--warn:#9a6700}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:var(--bg);color:var(--fg)}
header{background:#1d2330;color:#fff;padding:.6rem 1rem;display:flex;flex-wrap:wrap;gap:.4rem 1.2rem;align-items:center}
header .brand{font-weight:700;letter-spacing:.02em;margin-right:.5rem}
header nav{display:flex;flex-wrap:wrap;gap:.2rem}
header nav a{color:#cfd6e4;text-decoration:none;padding:.3rem .6rem;border-radius:6px}
header nav a.on,header nav a:hover{background:#323b4f;color:#fff}
header .who{margin-left:auto;display:flex;gap:.5rem;align-items:center;font-size:.9rem;color:#cfd6e4}
header .who a{color:#fff}
header form{margin:0}
main{max-width:1200px;margin:0 auto;padding:1rem}
h1{font-size:1.4rem;margin:.4rem 0 1rem}
h2{font-size:1.1rem;margin:1.6rem 0 .6rem}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:.7rem}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:.7rem .9rem}
.card .k{color:var(--mut);font-size:.8rem;text-transform:uppercase;letter-spacing:.04em}
.card .v{font-size:1.45rem;font-weight:600;font-variant-numeric:tabular-nums}
.card.bad .v{color:var(--bad)}
.scroll{overflow-x:auto;background:var(--card);border:1px solid var(--line);border-radius:10px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.45rem .7rem;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:.8rem;color:var(--mut);text-transform:uppercase;letter-spacing:.04em;background:#fafbfc}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
tr:last-child td{border-bottom:0}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.85em}
.preview{max-width:28rem;white-space:pre-wrap;word-break:break-all}
.empty{color:var(--mut);padding:1rem;background:var(--card);border:1px dashed var(--line);border-radius:10px}
a{color:var(--acc)}
button,.btn{font:inherit;border:1px solid var(--line);background:#fff;border-radius:7px;padding:.35rem .75rem;cursor:pointer}
button.primary{background:var(--acc);border-color:var(--acc);color:#fff}
button.danger{background:#fff;border-color:var(--bad);color:var(--bad)}
button:hover{filter:brightness(.95)}
.bar{display:flex;flex-wrap:wrap;gap:.5rem;align-items:center;margin:.6rem 0}
.flash{padding:.6rem .9rem;border-radius:8px;margin-bottom:1rem;background:#e7f4ec;color:var(--ok);border:1px solid #bfe3cc}
.flash.err{background:#fbeaea;color:var(--bad);border-color:#f0c4c1}
.mut{color:var(--mut)}
input[type=password],input[type=text]{font:inherit;padding:.4rem .6rem;border:1px solid var(--line);border-radius:7px;min-width:16rem;max-width:100%}
.pill{display:inline-block;padding:0 .45rem;border-radius:99px;background:#eef1f6;color:var(--mut);font-size:.8rem}
.pill.bad{background:#fbeaea;color:var(--bad)}
td.id code{white-space:nowrap}td.acts{white-space:nowrap}
@media (max-width:600px){main{padding:.6rem}.card .v{font-size:1.2rem}th,td{padding:.4rem .5rem}header .who{margin-left:0}
table.stack thead{display:none}table.stack tr{display:block;border-bottom:1px solid var(--line);padding:.4rem 0}
table.stack tr:last-child{border-bottom:0}table.stack td{display:block;border:0;padding:.2rem .7rem;text-align:left}
table.stack td[data-label]::before{content:attr(data-label);display:block;font-size:.75rem;color:var(--mut);text-transform:uppercase;letter-spacing:.04em}
.preview{max-width:100%}}
"#;

/// Refreshes `<main data-refresh=N>` every N seconds in place.
const REFRESH_JS: &str = r#"
(function(){var m=document.querySelector('main[data-refresh]');if(!m||!window.fetch)return;
var every=(+m.getAttribute('data-refresh')||5)*1000;
setInterval(function(){if(document.hidden)return;
fetch(location.href,{credentials:'same-origin'}).then(function(r){return r.ok?r.text():null}).then(function(t){
if(!t)return;var d=new DOMParser().parseFromString(t,'text/html').querySelector('main');
if(d){m.innerHTML=d.innerHTML;}}).catch(function(){});},every);})();
"#;

/// Escapes text for HTML content and attribute values.
///
/// # Examples
///
/// ```
/// assert_eq!(mq_admin_web::html::esc("<a href='x'>&"), "&lt;a href=&#39;x&#39;&gt;&amp;");
/// ```
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Percent-encodes a path segment or query value (everything but
/// unreserved characters).
///
/// # Examples
///
/// ```
/// assert_eq!(mq_admin_web::html::pct("a b/ü"), "a%20b%2F%C3%BC");
/// ```
pub fn pct(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            o.push(b as char);
        } else {
            let _ = write!(o, "%{b:02X}");
        }
    }
    o
}

/// A byte count, `1.5 KiB` style.
///
/// # Examples
///
/// ```
/// assert_eq!(mq_admin_web::html::bytes(1536), "1.5 KiB");
/// ```
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// An age: `850 ms`, `12.3 s`, `5 min`, `2.5 h`, `3.1 d`.
///
/// # Examples
///
/// ```
/// assert_eq!(mq_admin_web::html::age_ms(300_000), "5 min");
/// ```
pub fn age_ms(ms: u64) -> String {
    let s = ms as f64 / 1000.0;
    match ms {
        0..=999 => format!("{ms} ms"),
        1_000..=59_999 => format!("{s:.1} s"),
        60_000..=3_599_999 => format!("{:.0} min", s / 60.0),
        3_600_000..=86_399_999 => format!("{:.1} h", s / 3600.0),
        _ => format!("{:.1} d", s / 86_400.0),
    }
}

/// An optional age, `–` without one.
///
/// # Examples
///
/// ```
/// assert_eq!(mq_admin_web::html::opt_age(None), "–");
/// assert_eq!(mq_admin_web::html::opt_age(Some(850)), "850 ms");
/// ```
pub fn opt_age(ms: Option<u64>) -> String {
    ms.map_or_else(|| "–".to_owned(), age_ms)
}

/// A rate with one decimal.
///
/// # Examples
///
/// ```
/// assert_eq!(mq_admin_web::html::rate(12.34), "12.3/s");
/// ```
pub fn rate(v: f64) -> String {
    format!("{v:.1}/s")
}

/// Appends one stat card to `out`: `key` as its label, `value` large,
/// `id` as its `data-k` attribute (for tests and scripts), red if `bad`.
///
/// # Examples
///
/// ```
/// let mut h = String::new();
/// mq_admin_web::html::card(&mut h, "Failed", "3", "failed", true);
/// assert!(h.contains(r#"class="card bad" data-k="failed""#));
/// ```
pub fn card(out: &mut String, key: &str, value: &str, id: &str, bad: bool) {
    let _ = write!(
        out,
        r#"<div class="card{}" data-k="{}"><div class="k">{}</div><div class="v">{}</div></div>"#,
        if bad { " bad" } else { "" },
        esc(id),
        esc(key),
        esc(value)
    );
}

/// Who is looking, for the header's right-hand side.
///
/// # Examples
///
/// ```
/// use mq_admin_web::{html::Viewer, Caller};
/// assert!(matches!(Viewer::from(&Caller::Token), Viewer::Token));
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Viewer<'a> {
    /// Signed in, with the session's CSRF token for the sign-out form.
    Session(&'a str),
    /// Using the bearer token (an API client looking at a page).
    Token,
    /// Open reads, not signed in: a sign-in link.
    Anonymous,
    /// Nothing shown (the sign-in page itself).
    Nobody,
}

impl<'a> From<&'a Caller> for Viewer<'a> {
    fn from(c: &'a Caller) -> Viewer<'a> {
        match c {
            Caller::Session(s) => Viewer::Session(s.csrf()),
            Caller::Token => Viewer::Token,
            Caller::Anonymous => Viewer::Anonymous,
        }
    }
}

/// A whole page of site `S`: `active` is the current href (its navigation
/// entry is highlighted, and the sign-in link comes back to it); `title`
/// goes into `<title>`; `refresh` is seconds between in-place refreshes
/// (0 for none); `body` is the trusted HTML of `<main>`.
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
/// use mq_admin_web::html::{page, Viewer};
/// let p = page::<Demo>("/", "Home", &Viewer::Anonymous, 5, "<h1>Hi</h1>");
/// assert!(p.contains(r#"<main data-refresh="5"><h1>Hi</h1></main>"#));
/// assert!(p.contains(r#"<a href="/login?next=%2F">Sign in</a>"#));
/// ```
pub fn page<S: Site>(
    active: &str,
    title: &str,
    viewer: &Viewer<'_>,
    refresh: u32,
    body: &str,
) -> String {
    let mut o = String::with_capacity(body.len() + 6000);
    let _ = write!(
        o,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>{} · {}</title><style>{CSS}</style></head><body><header><span class="brand">{}</span><nav>"#,
        esc(title),
        esc(S::PRODUCT),
        esc(S::PRODUCT)
    );
    for (href, label) in S::NAV {
        let on = if *href == active { " class=\"on\"" } else { "" };
        let _ = write!(o, r#"<a href="{}"{on}>{}</a>"#, esc(href), esc(label));
    }
    o.push_str(r#"</nav><div class="who">"#);
    match viewer {
        Viewer::Session(csrf) => {
            let _ = write!(
                o,
                r#"<span>signed in</span><form method="post" action="/logout"><input type="hidden" name="csrf" value="{}"><button type="submit">Sign out</button></form>"#,
                esc(csrf)
            );
        }
        Viewer::Token => o.push_str("<span>token</span>"),
        Viewer::Anonymous => {
            let _ = write!(
                o,
                r#"<span>read only</span><a href="/login?next={}">Sign in</a>"#,
                pct(active)
            );
        }
        Viewer::Nobody => {}
    }
    o.push_str("</div></header>");
    if refresh > 0 {
        let _ = write!(o, r#"<main data-refresh="{refresh}">"#);
    } else {
        o.push_str("<main>");
    }
    o.push_str(body);
    let _ = write!(o, "</main><script>{REFRESH_JS}</script></body></html>");
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::TestSite;

    #[test]
    fn escaping_and_encoding() {
        assert_eq!(
            esc(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(pct("a b/ü"), "a%20b%2F%C3%BC");
    }

    #[test]
    fn human_numbers() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(age_ms(850), "850 ms");
        assert_eq!(age_ms(12_300), "12.3 s");
        assert_eq!(age_ms(300_000), "5 min");
        assert_eq!(age_ms(9_000_000), "2.5 h");
        assert_eq!(rate(0.04), "0.0/s");
    }

    #[test]
    fn the_frame_escapes_and_marks_the_active_entry() {
        let p = page::<TestSite>("/b", "<t>", &Viewer::Session("c\"s"), 0, "<p>x</p>");
        assert!(p.contains("<title>&lt;t&gt; · test</title>"));
        assert!(p.contains(r#"<a href="/b" class="on">B</a>"#));
        assert!(p.contains(r#"<a href="/">Home</a>"#));
        assert!(p.contains(r#"name="csrf" value="c&quot;s""#));
        assert!(p.contains("<main><p>x</p></main>"));
        let nobody = page::<TestSite>("/login", "Sign in", &Viewer::Nobody, 0, "");
        assert!(nobody.contains(r#"<div class="who"></div>"#));
    }
}

"""Does the sender domain say who may send for it? SPF, DKIM and DMARC records, with plain advice.

Lookups go through `app.config["DNS_TXT_LOOKUP"]` (a function name → list of TXT strings; [] when
there is none; raising when the lookup itself failed), dnspython by default, so tests give a stub and
never touch the network. Each lookup has TIMEOUT seconds and all of them together the same: a
slow or broken DNS gives "could not check", never a slow or failing page. Call outside any
database transaction.
"""
import concurrent.futures
import re

import dns.exception
import dns.resolver

from .settings import N_, Message

TIMEOUT = 2.0  # seconds, for all lookups together
# Names that never resolve publicly (RFC 2606, RFC 6761): nothing to look up.
_RESERVED = re.compile(r"(^|\.)(localhost|local|test|example|invalid|example\.(com|net|org))$")


def dnspython_txt(name: str, timeout: float = TIMEOUT) -> list[str]:
    """TXT records at `name` through the system's resolvers (dnspython); [] when there are none."""
    try:
        answer = dns.resolver.resolve(name, "TXT", lifetime=timeout)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except dns.exception.DNSException as exc:
        raise LookupError(f"{name}: {type(exc).__name__}") from None
    return [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in answer]


def _tags(text: str) -> dict:
    """`k=v; k=v` tags of a DKIM or DMARC record, keys lower case, whitespace removed from values."""
    tags = {}
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            tags[key.strip().lower()] = re.sub(r"\s+", "", value)
    return tags


def _spf(records):
    spf = [r for r in records if r.lower().startswith("v=spf1")]
    if not spf:
        return "missing", Message(N_("No SPF record: add a TXT record v=spf1 include:<your mail provider> ~all "
                                     "(your provider names the include)."))
    if len(spf) > 1:
        return "problem", Message(N_("%(n)s SPF records: receivers ignore them all; merge them into one."), n=len(spf))
    if re.search(r"(^|\s)\+?all(\s|$)", spf[0]):
        return "problem", Message(N_("The SPF record ends in +all: anyone may send as you; end it in ~all or -all."))
    return "ok", Message(N_("SPF record found: %(record)s. Make sure it includes your mail server."), record=spf[0])


def _dkim(records, expected, name):
    keys = [r for r in records if "p=" in r.replace(" ", "")]
    if not keys:
        return "missing", Message(N_("No DKIM record at %(name)s: publish the record below."), name=name)
    want = _tags(expected).get("p")
    if any(_tags(r).get("p") == want for r in keys):
        return "ok", Message(N_("The DKIM record at %(name)s matches the key."), name=name)
    return "problem", Message(N_("The DKIM record at %(name)s does not match the key: publish the record below "
                                 "in its place."), name=name)


def _dmarc(records, domain):
    dmarc = [r for r in records if r.replace(" ", "").lower().startswith("v=dmarc1")]
    if not dmarc:
        return "missing", Message(N_("No DMARC record: add a TXT record at _dmarc.%(domain)s: "
                                     "v=DMARC1; p=none; rua=mailto:dmarc@%(domain)s"), domain=domain)
    if len(dmarc) > 1:
        return "problem", Message(N_("%(n)s DMARC records: receivers ignore them all; keep one."), n=len(dmarc))
    policy = _tags(dmarc[0]).get("p", "none")
    return "ok", Message(N_("DMARC record found (policy %(policy)s)."), policy=policy)


def check(app, domain: str, dkim_record: dict | None, handle: str = "<handle>") -> dict:
    """{"domain", "public", "checks": [{"name", "status", "advice"}]} for the sender domain.

    `status` is ok, missing, problem, off (Winback does not sign) or unknown ("could not check"), and advice a settings
    `Message` (English; the web translates it). `dkim_record` is app/dkim.py's record, or None when
    Winback does not sign (then DKIM is the mail provider's business). A reserved name
    (localhost, *.example, …) is not looked up at all."""
    domain = (domain or "").lower().rstrip(".")
    if not domain or "." not in domain or _RESERVED.search(domain):
        return {"domain": domain, "public": False, "checks": []}
    lookup = app.config.get("DNS_TXT_LOOKUP") or dnspython_txt
    dkim_domain = dkim_record["domain"] if dkim_record else domain
    names = {"SPF": domain, "DMARC": f"_dmarc.{domain}"}
    if dkim_record:
        names["DKIM"] = dkim_record["txt_name"]
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=len(names))
    try:
        futures = {what: pool.submit(lookup, name) for what, name in names.items()}
        concurrent.futures.wait(futures.values(), timeout=TIMEOUT)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # a hung lookup is left behind, not waited for
    checks = []
    for what in ("SPF", "DKIM", "DMARC"):
        if what not in futures:
            checks.append({"name": what, "status": "off",
                           "advice": Message(N_("Winback does not sign this shop's mail: fine when your mail provider "
                                                "signs it for %(domain)s. To sign it here, run: winback dkim --shop %(handle)s"),
                                             domain=dkim_domain, handle=handle)})
            continue
        future = futures[what]
        try:
            records = list(future.result(timeout=0)) if future.done() else None
        except Exception:  # noqa: BLE001 - any trouble of the resolver is "could not check"
            records = None
        if records is None:
            checks.append({"name": what, "status": "unknown",
                           "advice": Message(N_("Could not check %(name)s: DNS did not answer. Try again later."),
                                             name=names[what])})
        elif what == "SPF":
            status, advice = _spf(records)
            checks.append({"name": what, "status": status, "advice": advice})
        elif what == "DKIM":
            status, advice = _dkim(records, dkim_record["txt_record"], names[what])
            checks.append({"name": what, "status": status, "advice": advice})
        else:
            status, advice = _dmarc(records, domain)
            checks.append({"name": what, "status": status, "advice": advice})
    return {"domain": domain, "public": True, "checks": checks}

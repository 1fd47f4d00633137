# prom_check.awk: a strict checker of the Prometheus text exposition format (what
# `promtool check metrics` would refuse), for tests/integration/ops_metrics.sh. Prints each
# problem as "line N: ..." and exits 1 if there is one.
#   - every line: "# HELP name text", "# TYPE name type", or "name{l="v",...} value"
#   - names [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]*, values floats
#   - HELP and TYPE at most once per family, TYPE before its samples, families contiguous
#   - counters end in _total; no series twice
#   - histograms: _bucket series with le ascending, cumulative counts never decreasing, the
#     last le="+Inf" equal to _count, and a _sum
function bad(msg) { printf "line %d: %s\n", NR, msg; errors++ }
function family(name) {
    if (name in types && types[name] == "histogram") return name
    if (name ~ /_(bucket|sum|count)$/) {
        base = name; sub(/_(bucket|sum|count)$/, "", base)
        if (base in types && types[base] == "histogram") return base
    }
    return name
}
function isnum(v) { return v ~ /^[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?$/ || v ~ /^[-+]?Inf$/ || v == "NaN" }
BEGIN { errors = 0; current = "" }
/^# HELP / {
    n = split($0, f, " ")
    if (n < 3 || f[3] !~ /^[a-zA-Z_:][a-zA-Z0-9_:]*$/) { bad("bad HELP"); next }
    if (f[3] in helps) bad("second HELP for " f[3])
    helps[f[3]] = 1; next
}
/^# TYPE / {
    n = split($0, f, " ")
    if (n != 4 || f[3] !~ /^[a-zA-Z_:][a-zA-Z0-9_:]*$/ || f[4] !~ /^(counter|gauge|histogram|summary|untyped)$/) { bad("bad TYPE"); next }
    if (f[3] in types) bad("second TYPE for " f[3])
    if (f[3] in seen) bad("TYPE after samples of " f[3])
    types[f[3]] = f[4]
    if (f[4] == "counter" && f[3] !~ /_total$/) bad("counter " f[3] " does not end in _total")
    next
}
/^#/ { next }
/^$/ { bad("empty line"); next }
{
    line = $0
    if (!match(line, /^[a-zA-Z_:][a-zA-Z0-9_:]*/)) { bad("bad metric name"); next }
    name = substr(line, 1, RLENGTH); rest = substr(line, RLENGTH + 1)
    labels = ""; le = ""
    if (substr(rest, 1, 1) == "{") {
        if (!match(rest, /^\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*"(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*")*)?\}/)) { bad("bad labels: " rest); next }
        labels = substr(rest, 2, RLENGTH - 2); rest = substr(rest, RLENGTH + 1)
        if (match(labels, /(^|,)le="[^"]*"/)) { le = substr(labels, RSTART, RLENGTH); sub(/^,?le="/, "", le); sub(/"$/, "", le) }
    }
    if (rest !~ /^ [^ ]+( -?[0-9]+)?$/) { bad("bad value part: \"" rest "\""); next }
    split(substr(rest, 2), vv, " "); value = vv[1]
    if (!isnum(value)) { bad("not a number: " value); next }
    fam = family(name)
    if (!(fam in types)) bad("no TYPE for " fam)
    if (fam != current) {
        if (fam in done) bad("family " fam " is not contiguous")
        if (current != "") done[current] = 1
        current = fam
    }
    seen[fam] = 1
    key = name "{" labels "}"
    if (key in series) bad("series twice: " key)
    series[key] = 1
    if (types[fam] == "histogram") {
        if (name == fam "_bucket") {
            if (le == "") { bad("bucket without le"); next }
            lev = (le == "+Inf") ? 1e308 : le + 0
            if (fam in lastle && lev <= lastle[fam]) bad("le not ascending in " fam)
            if (fam in lastcum && value + 0 < lastcum[fam]) bad("bucket counts decrease in " fam)
            lastle[fam] = lev; lastcum[fam] = value + 0
            if (le == "+Inf") inf[fam] = value + 0
        } else if (name == fam "_count") count[fam] = value + 0
        else if (name == fam "_sum") sum[fam] = 1
        else bad("histogram " fam " has a series " name)
    }
}
END {
    for (h in types) if (types[h] == "histogram" && (h in seen)) {
        if (!(h in inf)) bad("histogram " h " has no le=\"+Inf\" bucket")
        else if (!(h in count) || count[h] != inf[h]) bad("histogram " h ": _count differs from the +Inf bucket")
        if (!(h in sum)) bad("histogram " h " has no _sum")
    }
    exit errors > 0
}

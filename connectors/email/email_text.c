/* email_text.c - pure text work for email: charsets to UTF-8, HTML to
 * readable text and back, and trimming quoted history from replies. */
#include <ctype.h>
#include <errno.h>
#include <iconv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "email_int.h"

/* A growable string; every helper keeps it NUL-terminated. */
struct sbuf {
    char *p;
    size_t len, cap;
};

static void sb_grow(struct sbuf *b, size_t add)
{
    if (b->len + add + 1 <= b->cap) return;
    /* out of memory in a text helper: nothing sane to do */
    if (oh_grow(&b->p, &b->cap, b->len + add + 1, 1, 256)) abort();
    b->p[b->len] = 0; /* terminated even before anything is added */
}

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
    sb_grow(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void sb_puts(struct sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static void sb_putc(struct sbuf *b, char c)
{
    sb_add(b, &c, 1);
}

static void sb_utf8(struct sbuf *b, unsigned cp)
{
    char u[4];
    if (cp == 0 || (cp >= 0xd800 && cp < 0xe000) || cp > 0x10ffff) cp = 0xfffd;
    if (cp < 0x80) {
        sb_putc(b, (char)cp);
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3f));
        sb_add(b, u, 2);
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f));
        sb_add(b, u, 3);
    } else {
        u[0] = (char)(0xf0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (char)(0x80 | (cp & 0x3f));
        sb_add(b, u, 4);
    }
}

static char *sb_take(struct sbuf *b)
{
    if (!b->p) return strdup("");
    return b->p;
}

/* ---- charsets ---- */

/* Labels mail software puts on text mapped to what glibc's iconv decodes
 * best: the usual supersets (GB18030 for GB2312/GBK, CP932 for Shift_JIS,
 * Windows-1252 for Latin-1, which Outlook and browsers send as such). */
static const struct {
    const char *label, *iconv;
} cs_alias[] = {
    {"gb2312", "GB18030"},
    {"gbk", "GB18030"},
    {"x-gbk", "GB18030"},
    {"euc-cn", "GB18030"},
    {"cp936", "GB18030"},
    {"gb18030", "GB18030"},
    {"big5", "BIG5-HKSCS"},
    {"x-big5", "BIG5-HKSCS"},
    {"big5-hkscs", "BIG5-HKSCS"},
    {"shift_jis", "CP932"},
    {"shift-jis", "CP932"},
    {"sjis", "CP932"},
    {"x-sjis", "CP932"},
    {"ms_kanji", "CP932"},
    {"windows-31j", "CP932"},
    {"cp932", "CP932"},
    {"iso-2022-jp", "ISO-2022-JP-2"},
    {"iso-8859-1", "WINDOWS-1252"},
    {"latin1", "WINDOWS-1252"},
    {"iso_8859-1", "WINDOWS-1252"},
    {"us-ascii", "WINDOWS-1252"},
    {"ascii", "WINDOWS-1252"},
    {"ks_c_5601-1987", "CP949"},
    {"euc-kr", "CP949"},
    {"utf8", "UTF-8"},
    {"unicode-1-1-utf-7", "UTF-7"},
};

static const char *cs_name(const char *label)
{
    for (size_t i = 0; i < OH_ARRAY_SIZE(cs_alias); i++)
        if (strcasecmp(label, cs_alias[i].label) == 0) return cs_alias[i].iconv;
    return label;
}

/* Valid UTF-8 with each bad byte replaced by U+FFFD and NULs dropped. */
static char *utf8_clean(const char *in, size_t len)
{
    struct sbuf b = {0};
    sb_grow(&b, len);
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)in[i];
        size_t n = c < 0x80             ? 1
                   : (c & 0xe0) == 0xc0 ? 2
                   : (c & 0xf0) == 0xe0 ? 3
                   : (c & 0xf8) == 0xf0 ? 4
                                        : 0;
        if (n == 1) {
            if (c) sb_putc(&b, (char)c);
            i++;
            continue;
        }
        if (n && i + n <= len && oh_utf8_valid(in + i, n)) {
            sb_add(&b, in + i, n);
            i += n;
            continue;
        }
        sb_utf8(&b, 0xfffd);
        i++;
    }
    return sb_take(&b);
}

static char *iconv_all(iconv_t cd, const char *in, size_t len)
{
    struct sbuf b = {0};
    char *ip = (char *)in;
    size_t left = len;
    char tmp[4096];
    while (left > 0) {
        char *op = tmp;
        size_t room = sizeof tmp;
        size_t r = iconv(cd, &ip, &left, &op, &room);
        sb_add(&b, tmp, (size_t)(op - tmp));
        if (r != (size_t)-1) continue;
        if (errno == E2BIG) continue;
        sb_utf8(&b, 0xfffd); /* EILSEQ, or EINVAL: a truncated sequence */
        if (errno == EINVAL) break;
        ip++;
        left--;
    }
    char *op = tmp;
    size_t room = sizeof tmp;
    iconv(cd, NULL, NULL, &op, &room); /* flush shift states */
    sb_add(&b, tmp, (size_t)(op - tmp));
    char *raw = sb_take(&b);
    char *clean = utf8_clean(raw, b.len);
    free(raw);
    return clean;
}

char *email_to_utf8(const char *charset, const char *in, size_t len)
{
    if (!in) return strdup("");
    bool valid = oh_utf8_valid(in, len);
    if (!charset || !*charset || strcasecmp(charset, "utf-8") == 0 ||
        strcasecmp(charset, "utf8") == 0 || (valid && strcasecmp(charset, "us-ascii") == 0))
        return valid ? strndup(in, len) : utf8_clean(in, len);
    iconv_t cd = iconv_open("UTF-8", cs_name(charset));
    if (cd == (iconv_t)-1) {
        if (valid) return strndup(in, len);
        cd = iconv_open("UTF-8", "WINDOWS-1252");
        if (cd == (iconv_t)-1) return utf8_clean(in, len);
    }
    char *out = iconv_all(cd, in, len);
    iconv_close(cd);
    return out;
}

/* ---- HTML to text ---- */

/* HTML 4 Latin-1 entity names for U+00A0..U+00FF, in order. */
static const char *const latin1_names[96] = {
    "nbsp",   "iexcl",  "cent",   "pound",  "curren", "yen",    "brvbar", "sect",   "uml",
    "copy",   "ordf",   "laquo",  "not",    "shy",    "reg",    "macr",   "deg",    "plusmn",
    "sup2",   "sup3",   "acute",  "micro",  "para",   "middot", "cedil",  "sup1",   "ordm",
    "raquo",  "frac14", "frac12", "frac34", "iquest", "Agrave", "Aacute", "Acirc",  "Atilde",
    "Auml",   "Aring",  "AElig",  "Ccedil", "Egrave", "Eacute", "Ecirc",  "Euml",   "Igrave",
    "Iacute", "Icirc",  "Iuml",   "ETH",    "Ntilde", "Ograve", "Oacute", "Ocirc",  "Otilde",
    "Ouml",   "times",  "Oslash", "Ugrave", "Uacute", "Ucirc",  "Uuml",   "Yacute", "THORN",
    "szlig",  "agrave", "aacute", "acirc",  "atilde", "auml",   "aring",  "aelig",  "ccedil",
    "egrave", "eacute", "ecirc",  "euml",   "igrave", "iacute", "icirc",  "iuml",   "eth",
    "ntilde", "ograve", "oacute", "ocirc",  "otilde", "ouml",   "divide", "oslash", "ugrave",
    "uacute", "ucirc",  "uuml",   "yacute", "thorn",  "yuml",
};

static const struct {
    const char *name;
    unsigned cp;
} other_entities[] = {
    {"amp", '&'},       {"lt", '<'},        {"gt", '>'},        {"quot", '"'},
    {"apos", '\''},     {"euro", 0x20ac},   {"hellip", 0x2026}, {"mdash", 0x2014},
    {"ndash", 0x2013},  {"lsquo", 0x2018},  {"rsquo", 0x2019},  {"ldquo", 0x201c},
    {"rdquo", 0x201d},  {"sbquo", 0x201a},  {"bdquo", 0x201e},  {"bull", 0x2022},
    {"trade", 0x2122},  {"zwnj", 0x200c},   {"zwj", 0x200d},    {"thinsp", 0x2009},
    {"ensp", 0x2002},   {"emsp", 0x2003},   {"larr", 0x2190},   {"rarr", 0x2192},
    {"dagger", 0x2020}, {"permil", 0x2030}, {"OElig", 0x152},   {"oelig", 0x153},
    {"Scaron", 0x160},  {"scaron", 0x161},  {"Yuml", 0x178},    {"circ", 0x2c6},
    {"tilde", 0x2dc},   {"lsaquo", 0x2039}, {"rsaquo", 0x203a}, {"minus", 0x2212},
};

/* Decodes the entity at S (just after '&'); returns bytes consumed, 0 if
 * it is not one (the '&' is then literal). */
static size_t entity(const char *s, const char *end, unsigned *cp)
{
    const char *p = s;
    if (p < end && *p == '#') {
        p++;
        int base = 10;
        if (p < end && (*p == 'x' || *p == 'X')) {
            base = 16;
            p++;
        }
        unsigned long v = 0;
        const char *digits = p;
        while (p < end && (base == 16 ? isxdigit((unsigned char)*p) : isdigit((unsigned char)*p))) {
            v = v * (unsigned long)base +
                (unsigned long)(isdigit((unsigned char)*p) ? *p - '0'
                                                           : tolower((unsigned char)*p) - 'a' + 10);
            if (v > 0x10ffff) v = 0xfffd;
            p++;
        }
        if (p == digits) return 0;
        if (p < end && *p == ';') p++;
        *cp = (unsigned)v;
        return (size_t)(p - s);
    }
    char name[16];
    size_t n = 0;
    while (p < end && isalnum((unsigned char)*p) && n < sizeof name - 1)
        name[n++] = *p++;
    name[n] = 0;
    if (n == 0 || p >= end || *p != ';') return 0;
    for (size_t i = 0; i < 96; i++)
        if (strcmp(name, latin1_names[i]) == 0) {
            *cp = 0xa0 + (unsigned)i;
            return n + 1;
        }
    for (size_t i = 0; i < OH_ARRAY_SIZE(other_entities); i++)
        if (strcmp(name, other_entities[i].name) == 0) {
            *cp = other_entities[i].cp;
            return n + 1;
        }
    return 0;
}

struct h2t {
    struct sbuf out;
    int quote;       /* blockquote depth */
    int pre;         /* inside <pre> */
    bool line_start; /* nothing but the quote prefix written on this line */
    bool space;      /* a collapsed space is pending */
    int newlines;    /* consecutive line breaks written */
};

static void h2t_prefix(struct h2t *h)
{
    if (!h->line_start) return;
    for (int i = 0; i < h->quote; i++)
        sb_puts(&h->out, "> ");
    h->line_start = false;
}

static void h2t_break(struct h2t *h, int want)
{
    h->space = false;
    while (h->newlines < want) {
        /* trailing blanks of a line are noise */
        while (h->out.len && h->out.p[h->out.len - 1] == ' ')
            h->out.p[--h->out.len] = 0;
        if (h->out.len == 0) return; /* no leading blank lines */
        sb_putc(&h->out, '\n');
        h->newlines++;
        h->line_start = true;
        if (want == 2 && h->newlines == 1 && h->quote)
            for (int i = 0; i < h->quote; i++)
                sb_puts(&h->out, i ? " >" : ">");
    }
}

static void h2t_text(struct h2t *h, unsigned cp)
{
    if (!h->pre && (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || cp == 0xa0)) {
        if (!h->line_start) h->space = true;
        return;
    }
    if (h->pre && cp == '\n') {
        h->newlines = 0;
        h2t_break(h, 1);
        return;
    }
    if (cp == '\r') return;
    h2t_prefix(h);
    if (h->space) {
        sb_putc(&h->out, ' ');
        h->space = false;
    }
    if (cp == 0xad || cp == 0x200b || cp == 0x200c || cp == 0x200d || cp == 0xfeff)
        return; /* invisible characters */
    sb_utf8(&h->out, cp);
    h->newlines = 0;
}

static bool tag_is(const char *tag, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(tag, *list) == 0) return true;
    return false;
}

/* Skips to the end of element NAME (for script/style/head/title). */
static const char *skip_element(const char *p, const char *end, const char *name)
{
    size_t n = strlen(name);
    for (; p + n + 2 <= end; p++)
        if (p[0] == '<' && p[1] == '/' && strncasecmp(p + 2, name, n) == 0) {
            const char *gt = memchr(p, '>', (size_t)(end - p));
            return gt ? gt + 1 : end;
        }
    return end;
}

char *email_html_to_text(const char *html, size_t len)
{
    static const char *const blocks[] = {
        "p",      "div",     "tr",      "table",   "ul",     "ol",     "h1",   "h2",
        "h3",     "h4",      "h5",      "h6",      "dl",     "dt",     "dd",   "hr",
        "center", "address", "section", "article", "header", "footer", "form", NULL};
    static const char *const paragraphs[] = {"p",  "h1", "h2",    "h3", "h4",
                                             "h5", "h6", "table", NULL};
    static const char *const skipped[] = {"script", "style", "head", "title", "template", NULL};
    struct h2t h = {.line_start = true};
    const char *p = html, *end = html + len;
    while (p < end) {
        if (*p == '<') {
            if (end - p >= 4 && memcmp(p, "<!--", 4) == 0) {
                const char *c = memmem(p + 4, (size_t)(end - p - 4), "-->", 3);
                p = c ? c + 3 : end;
                continue;
            }
            const char *q = p + 1;
            bool closing = q < end && *q == '/';
            if (closing) q++;
            if (q >= end || !(isalpha((unsigned char)*q) || *q == '!' || *q == '?')) {
                h2t_text(&h, '<'); /* a literal "<" */
                p++;
                continue;
            }
            char tag[16];
            size_t n = 0;
            while (q < end && (isalnum((unsigned char)*q) || *q == '!' || *q == '?') &&
                   n < sizeof tag - 1)
                tag[n++] = (char)tolower((unsigned char)*q++);
            tag[n] = 0;
            /* find the tag's end, respecting quoted attribute values */
            char quote = 0;
            while (q < end && (quote || *q != '>')) {
                if (quote && *q == quote)
                    quote = 0;
                else if (!quote && (*q == '"' || *q == '\''))
                    quote = *q;
                q++;
            }
            p = q < end ? q + 1 : end;
            if (!closing && tag_is(tag, skipped)) {
                p = skip_element(p, end, tag);
                continue;
            }
            if (strcmp(tag, "br") == 0) {
                h.newlines = 0;
                h2t_break(&h, 1);
            } else if (strcmp(tag, "blockquote") == 0) {
                h2t_break(&h, 1);
                h.quote += closing ? (h.quote > 0 ? -1 : 0) : 1;
            } else if (strcmp(tag, "pre") == 0) {
                h2t_break(&h, 1);
                h.pre += closing ? (h.pre > 0 ? -1 : 0) : 1;
            } else if (strcmp(tag, "li") == 0) {
                h2t_break(&h, 1);
                if (!closing) {
                    h2t_prefix(&h);
                    sb_puts(&h.out, "- ");
                    h.newlines = 0;
                }
            } else if (strcmp(tag, "td") == 0 || strcmp(tag, "th") == 0) {
                if (closing) h.space = !h.line_start;
            } else if (tag_is(tag, paragraphs)) {
                h2t_break(&h, 2);
            } else if (tag_is(tag, blocks)) {
                h2t_break(&h, 1);
            }
            continue;
        }
        if (*p == '&') {
            unsigned cp;
            size_t n = entity(p + 1, end, &cp);
            if (n) {
                h2t_text(&h, cp == 0xa0 ? ' ' : cp);
                p += n + 1;
                continue;
            }
        }
        /* a UTF-8 sequence passes through whole */
        unsigned char c = (unsigned char)*p;
        size_t n = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : 4;
        if (n == 1) {
            h2t_text(&h, c);
        } else if (p + n <= end) {
            h2t_prefix(&h);
            if (h.space) {
                sb_putc(&h.out, ' ');
                h.space = false;
            }
            sb_add(&h.out, p, n);
            h.newlines = 0;
        }
        p += n;
    }
    char *s = sb_take(&h.out);
    return email_strip(s);
}

/* ---- format=flowed (RFC 3676) ---- */

char *email_unflow(const char *text, bool delsp)
{
    struct sbuf out = {0};
    int open = -1; /* quote depth of the paragraph a soft break left open */
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (n && p[n - 1] == '\r') n--;
        int depth = 0;
        while ((size_t)depth < n && p[depth] == '>')
            depth++;
        const char *c = p + depth;
        size_t cn = n - (size_t)depth;
        if (cn && *c == ' ') c++, cn--; /* space-stuffing (4.4) */
        bool sig = cn == 3 && memcmp(c, "-- ", 3) == 0;
        bool soft = cn && c[cn - 1] == ' ' && !sig;
        /* a soft break joins only lines of the same quote depth (4.5) */
        if (open >= 0 && open != depth) sb_putc(&out, '\n');
        if (open != depth) {
            for (int i = 0; i < depth; i++)
                sb_putc(&out, '>');
            if (depth) sb_putc(&out, ' ');
        }
        sb_add(&out, c, soft && delsp ? cn - 1 : cn);
        if (soft) {
            open = depth;
        } else {
            sb_putc(&out, '\n');
            open = -1;
        }
        p = nl ? nl + 1 : p + strlen(p);
    }
    return sb_take(&out);
}

/* ---- quoted history ---- */

char *email_strip(char *s)
{
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = 0;
    /* drop leading blank lines, keep the first line's indentation */
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n')
            start = i + 1;
        else if (!isspace((unsigned char)s[i]))
            break;
    }
    if (start) memmove(s, s + start, n - start + 1);
    return s;
}

struct lines {
    char **l;
    size_t n;
};

static struct lines split_lines(const char *text)
{
    struct lines ls = {0};
    size_t cap = 16;
    ls.l = malloc(cap * sizeof *ls.l);
    const char *p = text;
    for (;;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (n && p[n - 1] == '\r') n--;
        if (ls.n == cap) ls.l = realloc(ls.l, (cap *= 2) * sizeof *ls.l);
        ls.l[ls.n++] = strndup(p, n);
        if (!nl) break;
        p = nl + 1;
    }
    return ls;
}

static void free_lines(struct lines *ls)
{
    for (size_t i = 0; i < ls->n; i++)
        free(ls->l[i]);
    free(ls->l);
}

static const char *skip_ws(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

static bool ends_with_ci(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    return n >= m && strncasecmp(s + n - m, suffix, m) == 0;
}

/* "On <date>, <name> wrote:" and its translations ("Am ... schrieb Bob:",
 * "Le ... a écrit :"), on one line or wrapped over up to three. Returns the
 * number of lines it spans, 0 if none. */
static size_t attribution(struct lines *ls, size_t i)
{
    static const char *const verbs[] = {"wrote",     "schrieb", "a écrit", "escribió", "ha scritto",
                                        "schreef",   "skrev",   "написал", "napisał",  "escreveu",
                                        "kirjoitti", "yazdı",   "írta",    "napsal",   NULL};
    const char *l = skip_ws(ls->l[i]);
    if (*l == '>' || !*l) return 0;
    char joined[1300] = "";
    for (size_t span = 1; span <= 3 && i + span <= ls->n; span++) {
        const char *last = ls->l[i + span - 1];
        if (span > 1 && !*skip_ws(last)) return 0;
        size_t jl = strlen(joined);
        snprintf(joined + jl, sizeof joined - jl, "%s%s", span > 1 ? " " : "", last);
        if (strlen(joined) > 400) return 0;
        if (!ends_with_ci(joined, ":")) continue;
        for (const char *const *v = verbs; *v; v++) {
            const char *hit = strcasestr(joined, *v);
            /* the verb near the end: "... wrote:", "... schrieb Bob <b@x>:" */
            if (hit && hit > joined && (hit[-1] == ' ' || hit[-1] == ',') && strlen(hit) < 160)
                return span;
        }
    }
    return 0;
}

static bool is_separator(const char *l)
{
    l = skip_ws(l);
    if (strstr(l, "Original Message") || strstr(l, "Original message") ||
        strstr(l, "Ursprüngliche Nachricht") || strstr(l, "Message d'origine") ||
        strstr(l, "Forwarded message"))
        return strncmp(l, "--", 2) == 0 || strncmp(l, "__", 2) == 0;
    size_t u = 0;
    while (l[u] == '_')
        u++;
    return u >= 10 && !*skip_ws(l + u);
}

static bool header_line(const char *l, const char *const *names)
{
    l = skip_ws(l);
    if (*l == '*') /* Outlook's bold "*From:*" in plain text */
        l++;
    for (; *names; names++) {
        size_t n = strlen(*names);
        if (strncasecmp(l, *names, n) == 0) return true;
    }
    return false;
}

/* Outlook's reply header block: From: ... Sent:/Date: ... To:/Subject: */
static bool outlook_block(struct lines *ls, size_t i)
{
    static const char *const from[] = {"From:", "Von:", "De :", "De:", "Van:", NULL};
    static const char *const sent[] = {
        "Sent:", "Date:", "Gesendet:", "Envoyé :", "Envoyé:", "Enviado el:", "Verzonden:", NULL};
    static const char *const to[] = {"To:",   "Subject:", "An:",  "Betreff:",   "À :", "Objet :",
                                     "Para:", "Asunto:",  "Aan:", "Onderwerp:", "Cc:", NULL};
    if (!header_line(ls->l[i], from)) return false;
    bool has_sent = false, has_to = false;
    for (size_t j = i + 1; j < ls->n && j <= i + 6; j++) {
        has_sent |= header_line(ls->l[j], sent);
        has_to |= header_line(ls->l[j], to);
    }
    return has_sent && has_to;
}

static char *join_kept(struct lines *ls, size_t upto, bool drop_quotes, size_t skip_from,
                       size_t skip_n)
{
    struct sbuf b = {0};
    for (size_t i = 0; i < upto; i++) {
        if (i >= skip_from && i < skip_from + skip_n) continue;
        if (drop_quotes && *skip_ws(ls->l[i]) == '>') continue;
        sb_puts(&b, ls->l[i]);
        sb_putc(&b, '\n');
    }
    return email_strip(sb_take(&b));
}

char *email_trim_quotes(const char *text)
{
    struct lines ls = split_lines(text);
    size_t cut = ls.n, span = 0;
    for (size_t i = 0; i < ls.n; i++) {
        if ((span = attribution(&ls, i)) > 0 || is_separator(ls.l[i]) || outlook_block(&ls, i)) {
            cut = i;
            break;
        }
    }
    char *out = join_kept(&ls, cut, true, 0, 0);
    if (!*out && cut < ls.n) {
        /* bottom-posting: the history comes first, the answer below it */
        free(out);
        out = join_kept(&ls, ls.n, true, cut, span ? span : 1);
    }
    if (!*out) {
        free(out);
        out = email_strip(strdup(text));
    }
    free_lines(&ls);
    return out;
}

/* ---- text to HTML ---- */

char *email_text_to_html(const char *text)
{
    struct sbuf b = {0};
    sb_puts(&b, "<!DOCTYPE html>\r\n<html><head><meta charset=\"utf-8\"></head><body>\r\n<div>");
    for (const char *p = text; *p; p++) {
        switch (*p) {
        case '&':
            sb_puts(&b, "&amp;");
            break;
        case '<':
            sb_puts(&b, "&lt;");
            break;
        case '>':
            sb_puts(&b, "&gt;");
            break;
        case '"':
            sb_puts(&b, "&quot;");
            break;
        case '\r':
            break;
        case '\n':
            if (p[1] == '\n') {
                sb_puts(&b, "</div>\r\n<div><br></div>\r\n<div>");
                while (p[1] == '\n')
                    p++;
            } else {
                sb_puts(&b, "<br>\r\n");
            }
            break;
        default:
            sb_putc(&b, *p);
        }
    }
    sb_puts(&b, "</div>\r\n</body></html>\r\n");
    return sb_take(&b);
}

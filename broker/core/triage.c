/* triage.c - the triage scorer: folds the customer's own text (quotes cut,
 * case and accents folded), matches the cue lists of data/triage/ at each
 * word start and combines the cue families with a few rules (negation,
 * sarcasm, shouting, emoji). See docs/triage.md for the rules and figures. */
#include "core/triage.h"
#include <stdint.h>
#include <string.h>
#include "core/oh.h"

struct cue {
    const char *s; /* folded phrase; a trailing space asks for a word end */
    uint8_t len;
    uint8_t cls;  /* enum cue_class */
    uint8_t lang; /* enum lang, for CUE_LANG */
};

#include "core/triage_lex.inc" /* generated from data/triage/ by tools/triage_gen.py */

static const char *const lang_names[LANG_COUNT] = {"en", "es", "de", "pt", "fr", "ja", "ru"};

/* What one pass over a text found. Token indexes drive the windows of the
 * rules ("not" at most 3 words before "happy"). */
struct scan {
    uint16_t n[CUE_COUNT];
    int last[CUE_COUNT]; /* token index of the last hit, or -100 */
    int lang[LANG_COUNT];
    int tokens;
    int clause;       /* token index of the last clause break ("," "." "!" ...) */
    int pos, neg;     /* positive / mildly negative words, after negation */
    int negated_pos;  /* "not happy", "nicht zufrieden" */
    bool req_person;  /* "talk to" near "a human" */
    bool bot_refusal; /* "stop the bot", "no quiero un robot" */
    bool bot_instead; /* "a person instead of the bot" */
    bool money;       /* a charge near an anomaly ("charged ... twice") */
    int cjk, cyrillic, latin;
    int angry_emoji, happy_emoji;
    int masked;     /* "f**k", "m*rde" */
    int digits_run; /* longest run of digits (order numbers) */
};

/* ---- folding ---------------------------------------------------------- */

struct folded {
    char t[OH_TRIAGE_MAX_TEXT + 16]; /* " word word " */
    size_t n;
};

static void put(struct folded *f, char c)
{
    if (f->n >= sizeof f->t - 8) return;
    if (c == ' ' && f->t[f->n - 1] == ' ') return;
    f->t[f->n++] = c;
}

/* A clause break: negation does not reach over it ("nicht schlecht, danke"). */
static void brk(struct folded *f)
{
    if (f->n >= 2 && f->t[f->n - 2] == '|') return;
    put(f, ' ');
    put(f, '|');
    put(f, ' ');
}

static void emoji(struct scan *s, uint32_t cp)
{
    switch (cp) {
    case 0x1F621:
    case 0x1F620:
    case 0x1F92C:
    case 0x1F47F:
    case 0x1F4A2:
    case 0x1F624:
    case 0x1F644:
    case 0x1F612:
    case 0x1F44E:
    case 0x1F595: s->angry_emoji++; break;
    case 0x1F602:
    case 0x1F923:
    case 0x1F60A:
    case 0x1F600:
    case 0x1F601:
    case 0x1F603:
    case 0x1F604:
    case 0x1F606:
    case 0x1F60D:
    case 0x1F970:
    case 0x1F44D:
    case 0x1F642:
    case 0x1F609:
    case 0x1F64F:
    case 0x2764:
    case 0x263A:
    case 0x1F60E:
    case 0x1F389: s->happy_emoji++; break;
    }
}

/* Appends the folded form of P..P+LEN to F; counts scripts, emoji and Latin
 * letters that tell languages apart into S (LANGW: weight, 0 for a subject). */
static void fold(struct folded *f, struct scan *s, const unsigned char *p, size_t len, int langw)
{
    size_t i = 0;
    while (i < len) {
        unsigned c = p[i];
        if (c < 0x80) {
            if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '*')
                put(f, (char)c);
            else if (c >= 'A' && c <= 'Z')
                put(f, (char)(c + 32));
            else if (strchr(",.;:!?", (int)c))
                brk(f);
            else
                put(f, ' ');
            if ((c | 32) >= 'a' && (c | 32) <= 'z') s->latin++;
            i++;
            continue;
        }
        size_t k = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        if (i + k > len) break;
        uint32_t cp = k == 4 ? (c & 7u) << 18 | (p[i + 1] & 63u) << 12 | (p[i + 2] & 63u) << 6 |
                                   (p[i + 3] & 63u)
                      : k == 3 ? (c & 15u) << 12 | (p[i + 1] & 63u) << 6 | (p[i + 2] & 63u)
                      : k == 2 ? (c & 31u) << 6 | (p[i + 1] & 63u)
                               : c;
        if (cp >= 0xC0 && cp <= 0xFF) {
            const char *r = latin1_fold[cp - 0xC0];
            for (; *r; r++)
                put(f, *r);
            s->latin++;
            /* letters of one language (ñ, ß, ã, è ...) */
            static const char *const es = "\xf1\xe1\xed\xf3\xfa\xd1",
                                     *const de = "\xdf\xe4\xf6\xfc\xc4\xd6\xdc",
                                     *const pt = "\xe3\xf5\xe7\xea\xe1\xf3\xe2\xf4",
                                     *const fr = "\xe8\xe0\xf9\xe2\xee\xeb\xe7\xea\xef\xfb\xf4";
            if (strchr(es, (int)cp)) s->lang[LANG_ES] += langw;
            if (strchr(de, (int)cp)) s->lang[LANG_DE] += 2 * langw;
            if (strchr(pt, (int)cp)) s->lang[LANG_PT] += langw + (cp == 0xE3 || cp == 0xF5) * langw;
            if (strchr(fr, (int)cp)) s->lang[LANG_FR] += langw + (cp == 0xE8 || cp == 0xE0) * langw;
        } else if (cp == 0xA1 || cp == 0xBF) { /* ¡ ¿ */
            s->lang[LANG_ES] += 2 * langw;
            brk(f);
        } else if (cp == 0x152 || cp == 0x153) {
            put(f, 'o');
            put(f, 'e');
            s->lang[LANG_FR] += 2 * langw;
        } else if (cp < 0xC0) {
            put(f, ' ');
        } else if (cp >= 0x410 && cp <= 0x42F) { /* А-Я -> а-я */
            uint32_t l = cp + 0x20;
            put(f, (char)(0xC0 | l >> 6));
            put(f, (char)(0x80 | (l & 63)));
            s->cyrillic++;
        } else if (cp == 0x401 || cp == 0x451) { /* Ё ё -> е */
            put(f, (char)0xD0);
            put(f, (char)0xB5);
            s->cyrillic++;
        } else if ((cp >= 0x2000 && cp <= 0x206F) || (cp >= 0x3000 && cp <= 0x3002) ||
                   cp == 0xFF01 || cp == 0xFF1F) {
            if (cp >= 0x2000 && cp <= 0x201F)
                put(f, ' '); /* spaces, dashes, quotes */
            else
                brk(f); /* "…", "、", "。", "！", "？" */
        } else if (cp >= 0x1F000 || (cp >= 0x2600 && cp <= 0x27BF) || cp == 0xFE0F) {
            emoji(s, cp);
            put(f, ' ');
        } else {
            if (cp >= 0x430 && cp <= 0x44F) s->cyrillic++;
            if (cp >= 0x3040 && cp <= 0x9FFF) s->cjk++;
            for (size_t j = 0; j < k; j++)
                put(f, (char)p[i + j]);
        }
        i += k;
    }
}

/* ---- the customer's own lines ------------------------------------------- */

static bool has(const char *l, size_t n, const char *needle)
{
    return memmem(l, n, needle, strlen(needle)) != NULL;
}

static bool starts(const char *l, size_t n, const char *p)
{
    size_t k = strlen(p);
    return n >= k && !memcmp(l, p, k);
}

/* True for the line that introduces quoted mail ("On Mon, ... wrote:",
 * "El ... escribió:", "Am ... schrieb ...:", "Le ... a écrit :", "Em ...
 * escreveu:", Outlook's "-----Original Message-----"): the rest of the
 * message is someone's earlier text. */
static bool quote_header(const char *l, size_t n)
{
    while (n && (l[n - 1] == ' ' || l[n - 1] == '\r' || l[n - 1] == '\t'))
        n--;
    bool colon = n && l[n - 1] == ':';
    if (has(l, n, "-----Original Message") || has(l, n, "-----Mensaje original") ||
        has(l, n, "Urspr\xc3\xbcngliche Nachricht") || has(l, n, "Message d'origine") ||
        has(l, n, "-----Mensagem original") || has(l, n, "__________"))
        return true;
    if (has(l, n, "wrote:")) return starts(l, n, "On ") || colon;
    if (has(l, n, "escribi\xc3\xb3") || has(l, n, "escribio:")) return starts(l, n, "El ") || colon;
    if (has(l, n, "schrieb")) return starts(l, n, "Am ") || (colon && has(l, n, "@"));
    if (has(l, n,
            "a \xc3\xa9"
            "crit"))
        return starts(l, n, "Le ") || colon;
    if (has(l, n, "escreveu")) return starts(l, n, "Em ") || colon;
    if (has(l, n, "\xd0\xbd\xd0\xb0\xd0\xbf\xd0\xb8\xd1\x81\xd0\xb0\xd0\xbb"))
        return colon; /* написал */
    return false;
}

/* True when the first non-blank line of P..P+N starts with '>'. */
static bool next_line_quoted(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '>') return true;
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\n' && p[i] != '\r') return false;
    }
    return false;
}

/* Shouting: words in capitals, not counting tokens with digits (order
 * numbers like KX7731QP) nor one-letter words. */
static void caps(const char *l, size_t n, int *words, int *upper)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (l[i] == ' ' || l[i] == '\t'))
            i++;
        int up = 0, low = 0, dig = 0;
        while (i < n && l[i] != ' ' && l[i] != '\t') {
            char c = l[i++];
            up += c >= 'A' && c <= 'Z';
            low += c >= 'a' && c <= 'z';
            dig += c >= '0' && c <= '9';
        }
        if (dig || up + low < 2) continue;
        (*words)++;
        *upper += low == 0;
    }
}

/* ---- matching ------------------------------------------------------------ */

static void hit(struct scan *s, const struct cue *e, int k)
{
    int *last = s->last;
    /* a negation word at most 3 words before, in the same clause */
    bool negated =
        last[CUE_NEGATOR] >= k - 3 && last[CUE_NEGATOR] > s->clause && last[CUE_NEGATOR] != k;
    switch (e->cls) {
    case CUE_LANG: s->lang[e->lang]++; return;
    case CUE_POS:
        if (negated) {
            s->negated_pos++;
            s->neg++;
        } else {
            s->pos++;
        }
        break;
    case CUE_NEGMILD:
        if (negated)
            s->pos++; /* "not bad", "no problem", "pas mal" */
        else
            s->neg++;
        break;
    case CUE_CHARGE:
        if (last[CUE_ANOMALY] >= k - 10) s->money = true;
        break;
    case CUE_ANOMALY:
        if (last[CUE_CHARGE] >= k - 10) s->money = true;
        break;
    case CUE_PERSON:
        if (last[CUE_REQ] >= k - 6) s->req_person = true;
        break;
    case CUE_REQ:
        if (last[CUE_PERSON] >= k - 2) s->req_person = true;
        break;
    case CUE_BOT:
        if (last[CUE_BOTNEG] >= k - 7 || negated) s->bot_refusal = true;
        if (last[CUE_BOTALT] >= k - 4) s->bot_instead = true;
        break;
    case CUE_BOTNEG:
        if (last[CUE_BOT] >= k - 3) s->bot_refusal = true;
        break;
    case CUE_BOTALT:
        if (last[CUE_BOT] >= k - 1) s->bot_instead = true; /* "ボットではなく" */
        break;
    }
    s->n[e->cls]++;
    last[e->cls] = k;
}

static bool is_cjk_lead(unsigned char c)
{
    return c >= 0xE3 && c <= 0xEF;
}

static void match(struct scan *s, const struct folded *f)
{
    const unsigned char *t = (const unsigned char *)f->t;
    int k = -1, run = 0;
    for (size_t p = 1; p + 1 < f->n; p++) {
        if (t[p] >= '0' && t[p] <= '9') {
            if (++run > s->digits_run) s->digits_run = run;
        } else {
            run = 0;
        }
        bool word = t[p - 1] == ' ' && t[p] != ' ';
        if (word) {
            k++;
            if (t[p] == '|') s->clause = k;
            /* a masked word: letters around '*' ("f**k", "m*rde") */
            size_t q = p;
            bool letter = false, star = false;
            while (q < f->n && t[q] != ' ') {
                if (t[q] == '*')
                    star = letter;
                else if (t[q] >= 'a' && t[q] <= 'z')
                    letter = true;
                q++;
            }
            s->masked += star;
        }
        if (!word && !is_cjk_lead(t[p])) continue;
        /* a bucket's cues are sorted by their bytes (tools/triage_gen.py):
         * once a cue's first differing byte is above the text's, so is every
         * later cue's, at that byte or before; the text ends in a NUL (below
         * any cue byte), so no compare runs past it */
        unsigned b = (t[p] * 31u + t[p + 1]) % LEX_NBUCKETS;
        for (unsigned i = lex_bucket[b]; i < lex_bucket[b + 1]; i++) {
            const struct cue *e = &lex[i];
            const unsigned char *c = (const unsigned char *)e->s;
            size_t j = 0;
            while (j < e->len && c[j] == t[p + j])
                j++;
            if (j == e->len)
                hit(s, e, k < 0 ? 0 : k);
            else if (c[j] > t[p + j])
                break;
        }
    }
    s->tokens = k + 1;
}

static void scan_init(struct scan *s)
{
    memset(s, 0, sizeof *s);
    for (int i = 0; i < CUE_COUNT; i++)
        s->last[i] = -100;
    s->clause = -1;
}

static void folded_init(struct folded *f)
{
    f->t[0] = ' ';
    f->n = 1;
}

static void folded_end(struct folded *f)
{
    if (f->t[f->n - 1] != ' ') f->t[f->n++] = ' ';
    f->t[f->n] = '\0';
}

/* ---- decision ------------------------------------------------------------ */

int oh_triage_classify(const char *text, size_t len, const char *subject, struct oh_triage *out)
{
    if (!text || !out) return OH_EINVAL;
    struct scan s;
    struct folded f;
    scan_init(&s);
    folded_init(&f);
    int words = 0, upper = 0, bangs = 0, runs = 0, questions = 0;
    /* the customer's own lines: quoted ones skipped, the rest after a quote header cut */
    size_t i = 0;
    while (i < len && f.n < OH_TRIAGE_MAX_TEXT) {
        const char *l = text + i;
        const char *nl = memchr(l, '\n', len - i);
        size_t n = nl ? (size_t)(nl - l) : len - i;
        i += n + 1;
        size_t lead = 0;
        while (lead < n && (l[lead] == ' ' || l[lead] == '\t'))
            lead++;
        if (lead < n && l[lead] == '>') continue;
        /* A quote header followed by '>' lines introduces a quote that the
         * customer may answer below (bottom-posting): skip the header only.
         * Followed by anything else (Outlook's "-----Original Message-----"
         * and the unquoted mail under it): the rest is not the customer's. */
        if (quote_header(l + lead, n - lead)) {
            if (!next_line_quoted(text + i, i < len ? len - i : 0)) break;
            continue;
        }
        caps(l, n, &words, &upper);
        for (size_t j = 0; j < n; j++) {
            bool mark = l[j] == '!' || l[j] == '?';
            bangs += l[j] == '!';
            questions += l[j] == '?';
            /* "!!", "?!", "??": exasperation */
            if (mark && j + 1 < n && (l[j + 1] == '!' || l[j + 1] == '?')) runs++;
        }
        fold(&f, &s, (const unsigned char *)l, n, 1);
        brk(&f);
    }
    folded_end(&f);
    match(&s, &f);

    /* the subject: its cues count for priority and language, not for mood */
    bool sub_money = false;
    if (subject && *subject) {
        struct scan sub;
        struct folded g;
        scan_init(&sub);
        folded_init(&g);
        fold(&g, &sub, (const unsigned char *)subject, strnlen(subject, 1024), 1);
        folded_end(&g);
        match(&sub, &g);
        static const int prio[] = {CUE_CHARGE, CUE_ANOMALY, CUE_SAFETY,  CUE_HACK,
                                   CUE_TODAY,  CUE_EVENT,   CUE_PROBLEM, CUE_REFUND,
                                   CUE_DELAY,  CUE_WHEREIS, CUE_ORDERCTX};
        for (size_t j = 0; j < OH_ARRAY_SIZE(prio); j++)
            s.n[prio[j]] += sub.n[prio[j]];
        for (int j = 0; j < LANG_COUNT; j++)
            s.lang[j] += sub.lang[j];
        sub_money = sub.money;
        s.cjk += sub.cjk;
        s.cyrillic += sub.cyrillic;
        s.latin += sub.latin;
    }

    /* frustration: a sum of cue families, each counted once or twice */
    bool shout = upper >= 3 && upper * 2 >= words;
    bool problem = s.n[CUE_PROBLEM] || s.n[CUE_REPEAT] || s.n[CUE_DELAY] || s.n[CUE_WHEREIS];
    int score = 2 * (s.n[CUE_ANGER] >= 2 ? 2 : s.n[CUE_ANGER]) + 2 * (s.n[CUE_THREAT] > 0) +
                2 * (s.n[CUE_PROF] > 0 || s.masked > 0) + 2 * (s.n[CUE_NEGEMO] > 0) +
                2 * (s.negated_pos > 0) + (s.n[CUE_REPEAT] > 0) + 2 * (s.n[CUE_REPEAT2] > 0) +
                2 * (s.n[CUE_SARC] > 0) + 2 * (s.n[CUE_IRONY] > 0 && problem) + 2 * shout +
                2 * (s.angry_emoji > 0) + 2 * s.bot_refusal + (runs > 0 || bangs >= 3) -
                (s.happy_emoji > 0 || s.n[CUE_LAUGH] > 0);
    out->frustrated = score >= 2;

    /* wants a human: an ask, a refusal of the bot, or a bare "agent" */
    out->wants_human = s.req_person || s.n[CUE_HUMANREQ] || s.bot_refusal || s.bot_instead ||
                       (s.tokens <= 3 && s.n[CUE_PERSON] > 0);

    /* priority: the rubric of issue 18, highest family first */
    bool money = s.money || sub_money;
    bool deadline = s.n[CUE_TODAY] && s.n[CUE_EVENT];
    if (money || s.n[CUE_SAFETY] || s.n[CUE_HACK] || deadline)
        out->priority = OH_TRIAGE_URGENT;
    else if (s.n[CUE_PROBLEM] || s.n[CUE_WHEREIS] || (s.n[CUE_REFUND] && s.n[CUE_DELAY]) ||
             (out->frustrated &&
              (s.n[CUE_REFUND] || s.n[CUE_THREAT] || s.n[CUE_DELAY] || s.n[CUE_REPEAT2])))
        out->priority = OH_TRIAGE_HIGH;
    else if (s.n[CUE_ORDERCTX] || s.n[CUE_REFUND] || out->wants_human || s.digits_run >= 4 ||
             out->frustrated)
        out->priority = OH_TRIAGE_NORMAL;
    else
        out->priority = OH_TRIAGE_LOW;
    /* "thanks, all arrived", "how much is shipping to Norway?" */
    bool about_one = s.n[CUE_ORDERCTX] <= 1 && s.digits_run < 4 && !s.n[CUE_REFUND];
    if (out->priority == OH_TRIAGE_NORMAL && !out->wants_human && !out->frustrated &&
        ((s.n[CUE_THANKS] && !questions) || (s.n[CUE_PRESALE] && about_one)))
        out->priority = OH_TRIAGE_LOW;

    /* sentiment: positive against negative evidence, frustration weighing most */
    double pos = s.pos + s.n[CUE_THANKS] + s.happy_emoji + s.n[CUE_LAUGH];
    double neg = s.neg + (score > 0 ? score : 0);
    double sent = (pos - neg) / (pos + neg + 1.0);
    if (out->frustrated && sent > -0.3) sent = -0.3;
    out->sentiment = sent < -1 ? -1 : sent > 1 ? 1 : sent;

    /* language: script first, then the best-scoring Latin language */
    int best = LANG_EN;
    if (s.cjk >= 2 && s.cjk * 4 >= s.latin)
        best = LANG_JA;
    else if (s.cyrillic > s.latin)
        best = LANG_RU;
    else
        for (int j = LANG_ES; j <= LANG_FR; j++)
            if (s.lang[j] > s.lang[best]) best = j;
    memcpy(out->language, lang_names[best], 3);
    return 0;
}

const char *oh_triage_priority_name(enum oh_triage_priority p)
{
    static const char *const names[] = {"low", "normal", "high", "urgent"};
    return (unsigned)p < OH_ARRAY_SIZE(names) ? names[p] : "normal";
}

int oh_triage_priority_parse(const char *s)
{
    for (int p = OH_TRIAGE_LOW; p <= OH_TRIAGE_URGENT; p++)
        if (s && !strcmp(s, oh_triage_priority_name(p))) return p;
    return -1;
}

/* fuzz_triage.c - the triage scorer over whatever a customer writes: any
 * bytes as the text (not NUL-terminated, invalid UTF-8, huge words, quoted
 * mail) and, after a first "\0\0", an email subject. The verdict must stay
 * in range, and scoring is pure: the same input gives the same verdict, and
 * an empty subject the verdict of none. */
#include <math.h>
#include "core/triage.h"
#include "fuzz.h"

static void check(const struct oh_triage *t)
{
    static const char *const langs[] = {"en", "es", "de", "pt", "fr", "ja", "ru"};
    bool known = false;
    for (size_t i = 0; i < sizeof langs / sizeof *langs; i++)
        known |= strcmp(t->language, langs[i]) == 0;
    if (!known || isnan(t->sentiment) || t->sentiment < -1 || t->sentiment > 1 ||
        (unsigned)t->priority > OH_TRIAGE_URGENT || (t->frustrated && t->sentiment > -0.3))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *sep = size >= 2 ? memmem(data, size, "\0\0", 2) : NULL;
    size_t len = sep ? (size_t)(sep - data) : size;
    /* the text exactly as long as it is, so a read past it is caught */
    char *text = malloc(len ? len : 1);
    if (!text) abort();
    memcpy(text, data, len);
    char *subject = sep ? fuzz_cstr(sep + 2, size - len - 2) : NULL;

    struct oh_triage a, b;
    memset(&a, 0x55, sizeof a);
    memset(&b, 0xAA, sizeof b);
    if (oh_triage_classify(text, len, subject, &a) != 0) abort();
    check(&a);
    /* again, an empty subject for none: the same verdict, every field of it
     * written (the two outputs started out different) */
    if (oh_triage_classify(text, len, subject ? subject : "", &b) != 0 ||
        a.frustrated != b.frustrated || a.wants_human != b.wants_human ||
        a.priority != b.priority || a.sentiment != b.sentiment ||
        strcmp(a.language, b.language) != 0)
        abort();
    if (oh_triage_priority_parse(oh_triage_priority_name(a.priority)) != (int)a.priority) abort();
    free(subject);
    free(text);
    return 0;
}

/* scaffold.c - `omnihubctl new-connector NAME`: copies the templates of
 * tools/templates/connector/ into a source tree and adds the registration
 * lines. What a connector starts from lives in those templates only. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "core/connector.h"
#include "core/daemon.h"
#include "scaffold.h"

#define SC_TEMPLATES "tools/templates/connector"
#define SC_MAX_FILES 32

struct sc_file {
    char *dest; /* relative to the root */
    char *text; /* substituted, without its @DEST line */
};

struct sc_job {
    const char *root, *name;
    char uname[32];
    struct sc_file files[SC_MAX_FILES];
    int nfiles;
};

/* [a-z][a-z0-9_]{1,30}: a C identifier, a config prefix and a folder name. */
static bool name_ok(const char *name)
{
    size_t n = strlen(name);
    return n >= 2 && n <= 31 && name[0] >= 'a' && name[0] <= 'z' &&
           strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

/* A configuration prefix of the core ("http", "log", ...) or a registered
 * connector's name cannot be a new connector's name. */
static bool name_taken(const char *name)
{
    size_t n = strlen(name);
    if (oh_connector_find(name)) return true;
    for (const struct oh_config_key *k = oh_core_keys; k->key; k++)
        if (!strncmp(k->key, name, n) && (k->key[n] == '.' || k->key[n] == '\0')) return true;
    return false;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    char chunk[4096];
    size_t got;
    while (mem && (got = fread(chunk, 1, sizeof chunk, f)) > 0)
        fwrite(chunk, 1, got, mem);
    bool bad = ferror(f) || !mem;
    fclose(f);
    if (mem) fclose(mem);
    if (bad) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* TEXT with @NAME@ and @UNAME@ replaced; caller frees. */
static char *substitute(const struct sc_job *job, const char *text)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    if (!out) return NULL;
    for (const char *p = text; *p;) {
        if (!strncmp(p, "@NAME@", 6)) {
            fputs(job->name, out);
            p += 6;
        } else if (!strncmp(p, "@UNAME@", 7)) {
            fputs(job->uname, out);
            p += 7;
        } else {
            fputc(*p++, out);
        }
    }
    fclose(out);
    return buf;
}

static char *path_of(const char *root, const char *rel)
{
    char *p = NULL;
    return asprintf(&p, "%s/%s", root, rel) < 0 ? NULL : p;
}

/* Reads every template but register.in into JOB; each names its
 * destination on a first line "@DEST path". */
static int load_templates(struct sc_job *job)
{
    char *dir = path_of(job->root, SC_TEMPLATES);
    DIR *d = dir ? opendir(dir) : NULL;
    if (!d) {
        fprintf(stderr,
                "new-connector: no templates in %s (run it in omnihub's source tree, "
                "or give --root)\n",
                dir ? dir : SC_TEMPLATES);
        free(dir);
        return -1;
    }
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n < 4 || strcmp(de->d_name + n - 3, ".in") || !strcmp(de->d_name, "register.in"))
            continue;
        char *tpath = path_of(dir, de->d_name);
        char *raw = tpath ? read_file(tpath) : NULL;
        char *text = raw ? substitute(job, raw) : NULL;
        char *nl = text && !strncmp(text, "@DEST ", 6) ? strchr(text, '\n') : NULL;
        if (!nl || job->nfiles == SC_MAX_FILES) {
            fprintf(stderr,
                    "new-connector: %s: unreadable or without a first line \"@DEST path\"\n",
                    tpath ? tpath : de->d_name);
            rc = -1;
        } else {
            struct sc_file *f = &job->files[job->nfiles++];
            f->dest = strndup(text + 6, (size_t)(nl - text - 6));
            f->text = strdup(nl + 1);
            if (!f->dest || !f->text) rc = -1;
        }
        free(text);
        free(raw);
        free(tpath);
    }
    closedir(d);
    free(dir);
    return rc;
}

/* mkdir -p of the folders above the relative path REL. */
static int make_parents(const char *root, const char *rel)
{
    char *path = path_of(root, rel);
    if (!path) return -1;
    for (char *s = path + strlen(root) + 1; (s = strchr(s, '/')); s++) {
        *s = '\0';
        int bad = mkdir(path, 0755) && errno != EEXIST;
        *s = '/';
        if (bad) {
            fprintf(stderr, "new-connector: cannot create the folders of %s: %s\n", path,
                    strerror(errno));
            free(path);
            return -1;
        }
    }
    free(path);
    return 0;
}

static int write_file(const char *path, const char *text, const char *mode)
{
    FILE *f = fopen(path, mode);
    if (!f || fputs(text, f) < 0 || fclose(f)) {
        fprintf(stderr, "new-connector: cannot write %s: %s\n", path, strerror(errno));
        if (f) fclose(f);
        return -1;
    }
    return 0;
}

/* Inserts LINE after the last line of FILE (relative) that starts with
 * ANCHOR; rewrites the file. */
static int register_line(const char *root, const char *file, const char *anchor, const char *line)
{
    char *path = path_of(root, file);
    char *text = path ? read_file(path) : NULL;
    char *at = NULL;
    for (char *p = text; p && *p;) {
        if (!strncmp(p, anchor, strlen(anchor))) at = p;
        char *nl = strchr(p, '\n');
        p = nl ? nl + 1 : p + strlen(p);
    }
    int rc = -1;
    if (!at) {
        fprintf(stderr, "new-connector: %s has no line starting with \"%s\"\n", file, anchor);
    } else {
        char *end = strchr(at, '\n');
        end = end ? end + 1 : at + strlen(at);
        char *out = NULL;
        if (asprintf(&out, "%.*s%s\n%s", (int)(end - text), text, line, end) >= 0) {
            rc = write_file(path, out, "w");
            free(out);
        }
    }
    free(text);
    free(path);
    return rc;
}

/* register.in: "FILE | ANCHOR | LINE" a line, # comments. */
static int register_all(const struct sc_job *job)
{
    char *tpath = path_of(job->root, SC_TEMPLATES "/register.in");
    char *raw = tpath ? read_file(tpath) : NULL;
    char *text = raw ? substitute(job, raw) : NULL;
    int rc = text ? 0 : -1;
    if (!text) fprintf(stderr, "new-connector: cannot read %s\n", tpath ? tpath : "register.in");
    char *save = NULL;
    for (char *l = text ? strtok_r(text, "\n", &save) : NULL; l && rc == 0;
         l = strtok_r(NULL, "\n", &save)) {
        if (*l == '#' || *l == '\0') continue;
        char *a = strstr(l, " | ");
        char *b = a ? strstr(a + 3, " | ") : NULL;
        if (!b) {
            fprintf(stderr, "new-connector: register.in: bad line \"%s\"\n", l);
            rc = -1;
            break;
        }
        *a = *b = '\0';
        rc = register_line(job->root, l, a + 3, b + 3);
        if (rc == 0) printf("registered in %s\n", l);
    }
    free(text);
    free(raw);
    free(tpath);
    return rc;
}

int oh_scaffold_cmd(int argc, char **argv)
{
    static const struct option opts[] = {{"root", required_argument, NULL, 'r'}, {0}};
    struct sc_job job = {.root = "."};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c != 'r') return 2;
        job.root = optarg;
    }
    if (optind != argc - 1) {
        fprintf(stderr, "usage: omnihubctl new-connector NAME [--root DIR]\n");
        return 2;
    }
    job.name = argv[optind];
    if (!name_ok(job.name)) {
        fprintf(stderr, "new-connector: the name must match [a-z][a-z0-9_]{1,30}, not \"%s\"\n",
                job.name);
        return 2;
    }
    if (name_taken(job.name)) {
        fprintf(stderr,
                "new-connector: \"%s\" is already a connector or a configuration "
                "section\n",
                job.name);
        return 2;
    }
    for (size_t i = 0; job.name[i]; i++)
        job.uname[i] =
            (char)(job.name[i] >= 'a' && job.name[i] <= 'z' ? job.name[i] - 32 : job.name[i]);
    int rc = load_templates(&job) ? 1 : 0;
    /* nothing is written while any destination exists: a half-made
     * connector is worse than none */
    char *folder = NULL;
    if (rc == 0 && asprintf(&folder, "%s/connectors/%s", job.root, job.name) >= 0) {
        struct stat st;
        if (stat(folder, &st) == 0) {
            fprintf(stderr, "new-connector: %s exists\n", folder);
            rc = 2;
        }
    }
    for (int i = 0; rc == 0 && i < job.nfiles; i++) {
        char *p = path_of(job.root, job.files[i].dest);
        struct stat st;
        if (p && stat(p, &st) == 0) {
            fprintf(stderr, "new-connector: %s exists\n", p);
            rc = 2;
        }
        free(p);
    }
    for (int i = 0; rc == 0 && i < job.nfiles; i++) {
        char *p = path_of(job.root, job.files[i].dest);
        rc = !p || make_parents(job.root, job.files[i].dest) ||
                     write_file(p, job.files[i].text, "wx")
                 ? 1
                 : 0;
        if (rc == 0) printf("created %s\n", job.files[i].dest);
        free(p);
    }
    if (rc == 0 && register_all(&job)) rc = 1;
    if (rc == 0)
        printf("\nconnector %s: rebuild (ninja -C build), then run its test "
               "(meson test -C build %s), format it (clang-format -i); docs/connectors.md\n"
               "says what to fill in\n",
               job.name, job.name);
    for (int i = 0; i < job.nfiles; i++) {
        free(job.files[i].dest);
        free(job.files[i].text);
    }
    free(folder);
    return rc;
}

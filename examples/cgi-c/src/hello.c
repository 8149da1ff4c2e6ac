/* A CGI program in plain C, for wasmhttp's WASMHTTP_MODE=cgi.
 *
 * Nothing here knows about WebAssembly or Kubernetes: it reads the request
 * from CGI/1.1 environment variables and stdin, and prints a CGI response
 * (header lines, a blank line, the body) on stdout, as it would under
 * Apache. Built with clang for wasm32-wasi against wasi-libc.
 *
 *   GET  /          a greeting and a form; the message of the day comes from
 *                   /config/motd.txt (a configMap volume in examples/cgi-c/k8s.yaml)
 *   POST /          the form: name=... (application/x-www-form-urlencoded)
 *   GET  /request   the CGI variables this request arrived with, and the
 *                   container's own APP_* variables (e.g. from a Secret), as text
 *   anything else   404
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FORM 4096

extern char **environ;

static const char *var(const char *name) {
    const char *value = getenv(name);
    return value ? value : "";
}

/* Prints text with HTML's special characters escaped. */
static void html(const char *text) {
    for (; *text; text++) {
        switch (*text) {
        case '<': fputs("&lt;", stdout); break;
        case '>': fputs("&gt;", stdout); break;
        case '&': fputs("&amp;", stdout); break;
        case '"': fputs("&quot;", stdout); break;
        default: putchar(*text);
        }
    }
}

/* Decodes application/x-www-form-urlencoded text in place. */
static void form_decode(char *text) {
    char *out = text;
    for (char *in = text; *in; in++) {
        if (*in == '+') {
            *out++ = ' ';
        } else if (*in == '%' && isxdigit((unsigned char)in[1]) && isxdigit((unsigned char)in[2])) {
            char hex[3] = {in[1], in[2], 0};
            *out++ = (char)strtol(hex, NULL, 16);
            in += 2;
        } else {
            *out++ = *in;
        }
    }
    *out = 0;
}

/* The value of field `name` in the form `body`, decoded, or NULL. */
static char *form_field(char *body, const char *name) {
    size_t len = strlen(name);
    for (char *field = strtok(body, "&"); field; field = strtok(NULL, "&")) {
        if (strncmp(field, name, len) == 0 && field[len] == '=') {
            form_decode(field + len + 1);
            return field + len + 1;
        }
    }
    return NULL;
}

static void page_start(const char *status) {
    if (status) printf("Status: %s\r\n", status);
    printf("Content-Type: text/html; charset=utf-8\r\n\r\n");
    printf("<!doctype html>\n<title>wasmhttp CGI in C</title>\n");
}

static void front_page(void) {
    page_start(NULL);
    printf("<h1>Hello from C, served as CGI by wasmhttp</h1>\n");
    FILE *motd = fopen("/config/motd.txt", "r");
    if (motd) {
        char line[512];
        printf("<p>Message of the day: ");
        while (fgets(line, sizeof line, motd)) html(line);
        printf("</p>\n");
        fclose(motd);
    }
    printf("<form method=\"post\" action=\"/\"><input name=\"name\"> <button>Greet me</button></form>\n");
}

static void greet(void) {
    long length = atol(var("CONTENT_LENGTH"));
    if (length <= 0 || length > MAX_FORM) {
        page_start("400 Bad Request");
        printf("<p>Send a form of at most %d bytes.</p>\n", MAX_FORM);
        return;
    }
    static char body[MAX_FORM + 1];
    size_t read = fread(body, 1, (size_t)length, stdin);
    body[read] = 0;
    char *name = form_field(body, "name");
    if (!name || !*name) {
        page_start("422 Unprocessable Content");
        printf("<p>The form has no name.</p>\n");
        return;
    }
    page_start(NULL);
    printf("<h1>Hello, ");
    html(name);
    printf("!</h1>\n");
}

static void request_variables(void) {
    static const char *names[] = {
        "REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "SERVER_NAME", "SERVER_PORT",
        "SERVER_PROTOCOL", "REMOTE_ADDR", "HTTP_USER_AGENT",
    };
    printf("Content-Type: text/plain\r\n\r\n");
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        printf("%s=%s\n", names[i], var(names[i]));
    }
    /* the container's environment reaches the program beside the request's */
    for (char **entry = environ; *entry; entry++) {
        if (!strncmp(*entry, "APP_", 4)) printf("%s\n", *entry);
    }
}

int main(void) {
    const char *method = var("REQUEST_METHOD");
    const char *path = var("PATH_INFO");
    if (!strcmp(path, "/") || !*path) {
        if (!strcmp(method, "POST")) greet();
        else front_page();
    } else if (!strcmp(path, "/request")) {
        request_variables();
    } else {
        page_start("404 Not Found");
        printf("<p>Nothing at ");
        html(path);
        printf("</p>\n");
        /* stderr is the container log (kubectl logs) */
        fprintf(stderr, "cgi-c: no page at %s\n", path);
    }
    return 0;
}

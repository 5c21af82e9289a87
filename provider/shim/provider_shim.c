/* tpmkey provider: the one call Rust cannot make on stable, the core's va_list error
 * upcall (OSSL_FUNC_CORE_VSET_ERROR). Private to the provider (not an installed header's
 * companion). Licensed under Apache-2.0. */
#include <stdarg.h>
#include <openssl/core.h>
#include <openssl/core_dispatch.h>

static void vset_error(OSSL_FUNC_core_vset_error_fn *vset, const OSSL_CORE_HANDLE *handle,
                       uint32_t reason, const char *fmt, ...)
{
    va_list args;

    va_start(args, fmt);
    vset(handle, reason, fmt, args);
    va_end(args);
}

/* Raises one error on the core's error queue with `text` as its data, and the source file,
 * line and function where the provider raised it as its debug information. */
void tpmkey_raise_error(OSSL_FUNC_core_new_error_fn *new_error,
                        OSSL_FUNC_core_set_error_debug_fn *set_debug,
                        OSSL_FUNC_core_vset_error_fn *vset, const OSSL_CORE_HANDLE *handle,
                        uint32_t reason, const char *file, int line, const char *func,
                        const char *text)
{
    if (new_error == NULL || set_debug == NULL || vset == NULL)
        return;
    new_error(handle);
    set_debug(handle, file, line, func);
    vset_error(vset, handle, reason, "%s", text);
}

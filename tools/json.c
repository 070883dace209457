/*
 * json.c -- reading the admin's JSON answers (the status object and
 * {"ok":...,"pid":...,"error":...}) through cJSON (Debian's libcjson), with
 * accessors that take NULL and a default so callers need no type checks.
 */
#include "gracectl.h"

#include <cJSON.h>

json_t *json_parse(const char *text, size_t len)
{
    const char *end = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (v == NULL)
        return NULL;
    while (end < text + len && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
        end++;
    if (end != text + len) { /* one value, nothing after it */
        cJSON_Delete(v);
        return NULL;
    }
    return (json_t *)v;
}

void json_free(json_t *v)
{
    cJSON_Delete((cJSON *)v);
}

const json_t *json_get(const json_t *obj, const char *key)
{
    return (const json_t *)cJSON_GetObjectItemCaseSensitive((const cJSON *)obj, key);
}

const json_t *json_at(const json_t *arr, size_t i)
{
    const cJSON *a = (const cJSON *)arr;
    if (!cJSON_IsArray(a) || i >= (size_t)cJSON_GetArraySize(a))
        return NULL;
    return (const json_t *)cJSON_GetArrayItem(a, (int)i);
}

bool json_is_number(const json_t *v)
{
    return cJSON_IsNumber((const cJSON *)v);
}

double json_number(const json_t *v, double otherwise)
{
    return cJSON_IsNumber((const cJSON *)v) ? ((const cJSON *)v)->valuedouble : otherwise;
}

const char *json_string(const json_t *v)
{
    return cJSON_IsString((const cJSON *)v) ? ((const cJSON *)v)->valuestring : NULL;
}

bool json_bool(const json_t *v, bool otherwise)
{
    return cJSON_IsBool((const cJSON *)v) ? cJSON_IsTrue((const cJSON *)v) : otherwise;
}

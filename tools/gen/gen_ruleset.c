/* The rulesets of alloc-gen: report items with their formulas, bindings by
 * budget item and by account, allocation rules per version, audit rules (see
 * gen_model.h). Fixed content: the same on every call. */
#include "gen_model.h"
#include "strbuf.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ std content */

/* 23 families, 450 base items. Columns: prefix, name, lead code, total code,
 * count, section, revenue, category, account root, direct weight, pending
 * weight, magnitude, sign. */
static const gen_family std_families[] = {
    {"RENT_INCOME", "Rent income", "Rent Income", "RENT_INCOME_TOTAL", 40, 0, true, "rent", "6001",
     14, 0, 6, GEN_SIGN_POSITIVE},
    {"SERVICE_FEE", "Property service fee", "Service Fee", "SERVICE_FEE_TOTAL", 30, 0, true, "gl",
     "6051", 10, 0, 5, GEN_SIGN_POSITIVE},
    {"PARKING_INCOME", "Parking income", "Parking Income", "PARKING_INCOME_TOTAL", 15, 0, true,
     "gl", "6052", 5, 0, 4, GEN_SIGN_POSITIVE},
    {"ADVERT_INCOME", "Advertising income", NULL, "ADVERT_INCOME_TOTAL", 10, 0, true, "gl", "6053",
     2, 0, 5, GEN_SIGN_POSITIVE},
    {"UTILITY_RECHARGE", "Utility recharge income", NULL, "UTILITY_RECHARGE_TOTAL", 15, 0, true,
     "gl", "6054", 4, 0, 5, GEN_SIGN_POSITIVE},
    {"OTHER_INCOME", "Other operating income", "Other Income", "OTHER_INCOME_TOTAL", 10, 0, true,
     "gl", "6301", 2, 1, 4, GEN_SIGN_POSITIVE},
    {"MAINT_COST", "Repairs and maintenance", "Repairs & Maintenance", "MAINT_COST_TOTAL", 30, 1,
     false, "gl", "6401", 8, 6, 5, GEN_SIGN_POSITIVE},
    {"CLEANING_COST", "Cleaning", NULL, "CLEANING_COST_TOTAL", 15, 1, false, "gl", "6402", 4, 3, 5,
     GEN_SIGN_POSITIVE},
    {"SECURITY_COST", "Security", NULL, "SECURITY_COST_TOTAL", 15, 1, false, "gl", "6403", 4, 3, 5,
     GEN_SIGN_POSITIVE},
    {"UTILITY_COST", "Utilities", NULL, "UTILITY_COST_TOTAL", 20, 1, false, "gl", "6404", 6, 8, 5,
     GEN_SIGN_POSITIVE},
    {"GREENING_COST", "Landscaping", NULL, "GREENING_COST_TOTAL", 10, 1, false, "gl", "6405", 2, 1,
     4, GEN_SIGN_POSITIVE},
    {"DEPRECIATION", "Depreciation and amortisation", NULL, "DEPRECIATION_TOTAL", 20, 1, false,
     "gl", "6406", 3, 4, 6, GEN_SIGN_POSITIVE},
    {"LEASE_COST", "Lease cost", "Office Rent", "LEASE_COST_TOTAL", 20, 1, false, "rent", "6407", 4,
     8, 6, GEN_SIGN_POSITIVE},
    {"SALARY", "Salaries", "Staff Salary", "Salary Total", 40, 2, false, "salary", "6601", 8, 20, 6,
     GEN_SIGN_POSITIVE},
    {"SOCIAL_INS", "Social insurance and housing fund", NULL, "SOCIAL_INS_TOTAL", 15, 2, false,
     "salary", "6602", 3, 8, 5, GEN_SIGN_POSITIVE},
    {"MARKETING", "Marketing", "Marketing Expense", "MARKETING_TOTAL", 30, 2, false, "marketing",
     "6603", 4, 12, 5, GEN_SIGN_POSITIVE},
    {"OFFICE_EXP", "Office expenses", NULL, "OFFICE_EXP_TOTAL", 20, 2, false, "gl", "6604", 3, 6, 4,
     GEN_SIGN_POSITIVE},
    {"TRAVEL_EXP", "Travel and entertainment", NULL, "TRAVEL_EXP_TOTAL", 15, 2, false, "gl", "6605",
     2, 4, 4, GEN_SIGN_POSITIVE},
    {"IT_EXP", "IT and systems", NULL, "IT_EXP_TOTAL", 15, 2, false, "gl", "6606", 1, 6, 5,
     GEN_SIGN_POSITIVE},
    {"HQ_FUNCTION", "Head-office function charges", NULL, "HQ_FUNCTION_TOTAL", 25, 2, false,
     "function", "6607", 1, 10, 6, GEN_SIGN_POSITIVE},
    {"TAX_SURCHARGE", "Taxes and surcharges", NULL, "TAX_SURCHARGE_TOTAL", 15, 3, false, "gl",
     "6801", 2, 2, 4, GEN_SIGN_POSITIVE},
    {"FIN_EXP", "Finance costs", "Bank Charges", "FIN_EXP_TOTAL", 10, 3, false, "gl", "6901", 2, 3,
     4, GEN_SIGN_POSITIVE},
    {"NONOP", "Non-operating items", NULL, "NONOP_TOTAL", 15, 3, false, "gl", "6711", 1, 1, 5,
     GEN_SIGN_MIXED},
};

/* Item name qualifiers, cycled through the items of a family. */
static const char *const qualifiers[] = {
    "residential",     "retail",        "office",          "car park",
    "common areas",    "clubhouse",     "warehouse",       "serviced apartments",
    "hotel",           "mixed use",     "shopping street", "industrial park",
    "student housing", "logistics hub", "showrooms"};
#define N_QUALIFIERS (sizeof qualifiers / sizeof qualifiers[0])

/* A formula item that is not a family total, placed after its report section. */
typedef struct formula_def {
    const char *code, *name;
    int section;
    const char *text;
} formula_def;

/* 27 derived lines; with the 23 family totals, 50 formula items. Together
 * they use the whole grammar of DESIGN.md 5.5. */
static const formula_def std_formulas[] = {
    {"REVENUE", "Total revenue", 0,
     "RENT_INCOME_TOTAL + SERVICE_FEE_TOTAL + PARKING_INCOME_TOTAL + ADVERT_INCOME_TOTAL"
     " + UTILITY_RECHARGE_TOTAL + OTHER_INCOME_TOTAL"},
    {"COST", "Cost of operations", 1,
     "SUM(MAINT_COST_TOTAL, CLEANING_COST_TOTAL, SECURITY_COST_TOTAL, UTILITY_COST_TOTAL,\n"
     "    GREENING_COST_TOTAL, DEPRECIATION_TOTAL, LEASE_COST_TOTAL)"},
    {"GROSS_PROFIT", "Gross profit", 1, "REVENUE - COST"},
    {"GROSS_MARGIN", "Gross margin %", 1, "ROUND(GROSS_PROFIT / REVENUE * 100, 2)"},
    {"COST_RATIO", "Cost to revenue ratio", 1, "COALESCE(COST / REVENUE, 0)"},
    {"RENT_COVERAGE", "Rent income over lease cost", 1,
     "Round(RENT_INCOME_TOTAL / LEASE_COST_TOTAL, 1)"},
    {"SMALLEST_SITE_COST", "Smallest site service cost", 1,
     "MIN(CLEANING_COST_TOTAL, SECURITY_COST_TOTAL, GREENING_COST_TOTAL)"},
    {"STAFF_COST", "Staff cost", 2, "[Salary Total] + SOCIAL_INS_TOTAL"},
    {"SELLING_EXP", "Selling expenses", 2, "MARKETING_TOTAL + TRAVEL_EXP_TOTAL * 0.5"},
    {"ADMIN_EXP", "Administrative expenses", 2,
     "OFFICE_EXP_TOTAL + IT_EXP_TOTAL + TRAVEL_EXP_TOTAL * .5 + HQ_FUNCTION_TOTAL"},
    {"OPEX", "Operating expenses", 2, "STAFF_COST + SELLING_EXP + ADMIN_EXP"},
    {"STAFF_COST_RATIO", "Staff cost ratio", 2, "ROUND(COALESCE(STAFF_COST / REVENUE, -1), 6)"},
    {"OPEX_RATIO", "Operating expense ratio", 2, "round(OPEX / [REVENUE], 3)"},
    {"LARGEST_EXPENSE", "Largest expense group", 2,
     "MAX(MARKETING_TOTAL, OFFICE_EXP_TOTAL, TRAVEL_EXP_TOTAL, IT_EXP_TOTAL)"},
    {"OPERATING_PROFIT", "Operating profit", 3, "GROSS_PROFIT - OPEX - TAX_SURCHARGE_TOTAL"},
    {"EBITDA", "EBITDA", 3, "OPERATING_PROFIT + DEPRECIATION_TOTAL"},
    {"NET_PROFIT", "Net profit", 3, "OPERATING_PROFIT - FIN_EXP_TOTAL + NONOP_TOTAL"},
    {"NET_MARGIN", "Net margin", 3, "if(REVENUE <> 0, Round(NET_PROFIT / REVENUE, 4), 0)"},
    {"TAX_PROVISION", "Income tax provision", 3,
     "ROUND(IF(OPERATING_PROFIT > 0, OPERATING_PROFIT * .25, 0), 2)"},
    {"NET_AFTER_TAX", "Net profit after tax", 3, "NET_PROFIT - TAX_PROVISION"},
    {"BONUS_POOL", "Bonus pool", 3, "ROUND(MAX(0, OPERATING_PROFIT) * 0.05, 0)"},
    {"NONOP_SHARE", "Non-operating share of result", 3,
     "ROUND(ABS(NONOP_TOTAL) / (ABS(NET_PROFIT) + 1), 5)"},
    {"IS_PROFITABLE", "Profitable (1/0)", 3, "IF(NET_PROFIT > 0 AND REVENUE >= 1000, 1, 0)"},
    {"LOSS_FLAG", "Operating loss (1/0)", 3, "NOT (OPERATING_PROFIT >= 0)"},
    {"HIGH_COST_FLAG", "High cost (1/0)", 3, "COST_RATIO > .75 or STAFF_COST_RATIO > 0.5"},
    {"WATCH_FLAG", "On watch list (1/0)", 3,
     "ROUND(GROSS_PROFIT, 0) = 0 OR (REVENUE < 10000 And not REVENUE <= 0)"},
    {"CASH_RESULT", "Cash result before depreciation", 3,
     "-(COST + OPEX) + +REVENUE + DEPRECIATION_TOTAL"},
};

/* Allocation rules per family: the first `first_n` items of the family (0 =
 * all) get the rule; family "*" is the version's default. */
typedef struct rule_def {
    const char *version, *family;
    int first_n;
    const char *driver, *scope;
} rule_def;

static const rule_def std_rules[] = {
    {"M", "*", 0, "headcount", "city"},
    {"F", "*", 0, "area", "city"},
    {"M", "LEASE_COST", 0, "area", "city"},
    {"F", "LEASE_COST", 0, "area", "city"},
    {"M", "MARKETING", 0, "revenue", "city"},
    {"F", "MARKETING", 0, "revenue", "company"},
    {"M", "HQ_FUNCTION", 0, "equal", "company"},
    {"F", "HQ_FUNCTION", 0, "headcount", "company"},
    {"M", "SALARY", 20, "headcount", "city"},
    {"F", "SALARY", 20, "headcount", "city"},
    {"M", "UTILITY_COST", 0, "area", "city"},
    {"F", "UTILITY_COST", 0, "contracts", "city"},
    {"M", "MAINT_COST", 10, "contracts", "city"},
    {"F", "MAINT_COST", 10, "contracts", "city"},
    {"M", "IT_EXP", 0, "equal", "city"},
    {"F", "IT_EXP", 0, "equal", "city"},
    {"M", "OTHER_INCOME", 0, "revenue", "company"},
    {"F", "OTHER_INCOME", 0, "revenue", "company"},
    {"M", "TRAVEL_EXP", 5, "contracts", "company"},
    {"F", "OFFICE_EXP", 10, "equal", "company"},
};

static const gen_audit_rule std_audits[] = {
    {"GP_IDENTITY", "ABS(GROSS_PROFIT - (REVENUE - COST)) < 0.01",
     "gross profit differs from revenue minus cost", "error"},
    {"NET_IDENTITY", "ABS(NET_PROFIT - (OPERATING_PROFIT - FIN_EXP_TOTAL + NONOP_TOTAL)) < 0.01",
     "net profit differs from its components", "error"},
    {"COST_WITHOUT_REVENUE", "REVENUE <> 0 OR COST = 0", "costs booked without any revenue",
     "warning"},
    {"COST_RATIO_LIMIT", "COST_RATIO <= 3", "cost of operations above three times revenue",
     "warning"},
    {"STAFF_RATIO_LIMIT", "STAFF_COST_RATIO < 0.6 or REVENUE = 0",
     "staff cost above 60% of revenue", "warning"},
};

/* ----------------------------------------------------------- demo content */

static const gen_family demo_families[] = {
    {"RENT_INCOME", "Rent income", "Rent Income", NULL, 1, 0, true, "rent", "6001", 30, 0, 6,
     GEN_SIGN_POSITIVE},
    {"SERVICE_FEE", "Property service fee", NULL, NULL, 1, 0, true, "gl", "6051", 20, 0, 5,
     GEN_SIGN_POSITIVE},
    {"PARKING_INCOME", "Parking income", NULL, NULL, 1, 0, true, "gl", "6052", 10, 0, 4,
     GEN_SIGN_POSITIVE},
    {"STAFF_COST", "Staff cost", NULL, NULL, 1, 2, false, "salary", "6601", 15, 40, 5,
     GEN_SIGN_POSITIVE},
    {"MARKETING", "Marketing", NULL, NULL, 1, 2, false, "marketing", "6603", 10, 30, 5,
     GEN_SIGN_POSITIVE},
    {"OFFICE_RENT", "Office rent", NULL, NULL, 1, 2, false, "rent", "6407", 10, 30, 5,
     GEN_SIGN_POSITIVE},
};

static const formula_def demo_formulas[] = {
    {"REVENUE", "Revenue", 0, "[Rent Income] + SERVICE_FEE + PARKING_INCOME"},
    {"COST", "Cost", 2, "SUM(STAFF_COST, MARKETING, OFFICE_RENT)"},
    {"GROSS_PROFIT", "Gross profit", 2, "REVENUE - COST"},
    {"MARGIN_PCT", "Margin %", 2, "ROUND(GROSS_PROFIT / REVENUE * 100, 1)"},
};

static const rule_def demo_rules[] = {
    {"M", "*", 0, "headcount", "city"},       {"F", "*", 0, "equal", "city"},
    {"M", "MARKETING", 0, "revenue", "city"}, {"F", "MARKETING", 0, "revenue", "company"},
    {"M", "OFFICE_RENT", 0, "area", "city"},  {"F", "OFFICE_RENT", 0, "area", "city"},
};

static const gen_audit_rule demo_audits[] = {
    {"GP_CHECK", "ABS(GROSS_PROFIT - (REVENUE - COST)) < 0.01",
     "gross profit differs from revenue minus cost", "error"},
    {"NO_REVENUE", "REVENUE <> 0 OR COST = 0", "costs booked without any revenue", "warning"},
};

/* ---------------------------------------------------------------- builder */

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

void gen_ruleset_free(gen_ruleset *rs) {
    if (!rs)
        return;
    for (size_t i = 0; i < rs->n_items; i++)
        free(rs->items[i].text);
    free(rs->items);
    free(rs->accounts);
    free(rs->rules);
    free(rs->family_first_account);
    free(rs->family_n_accounts);
    free(rs);
}

long gen_ruleset_find(const gen_ruleset *rs, const char *code) {
    for (size_t i = 0; i < rs->n_items; i++)
        if (!strcmp(rs->items[i].code, code))
            return (long)i;
    return -1;
}

const gen_alloc_rule *gen_ruleset_rule_for(const gen_ruleset *rs, const char *version,
                                           const char *item_code) {
    const gen_alloc_rule *fallback = NULL;
    for (size_t i = 0; i < rs->n_rules; i++) {
        const gen_alloc_rule *r = &rs->rules[i];
        if (strcmp(r->version, version))
            continue;
        if (!strcmp(r->item_code, item_code))
            return r;
        if (!strcmp(r->item_code, "*"))
            fallback = r;
    }
    return fallback;
}

/* Whether code is a bare ITEM token of the grammar ([A-Za-z_][A-Za-z0-9_]*). */
static bool is_bare_item(const char *code) {
    if (!(isalpha((unsigned char)*code) || *code == '_'))
        return false;
    for (const char *p = code; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_'))
            return false;
    return true;
}

/* The name of a legacy line from its code: "Office Rent" -> "Office rent". */
static void sentence_case(char *out, size_t outlen, const char *code) {
    snprintf(out, outlen, "%s", code);
    for (char *p = out + 1; *p; p++)
        *p = (char)tolower((unsigned char)*p);
}

/* Appends a reference to item code in formula text: bare when the grammar
 * allows, else bracketed. */
static void put_ref(strbuf *t, const char *code) {
    if (is_bare_item(code))
        strbuf_addstr(t, code);
    else
        strbuf_addf(t, "[%s]", code);
}

/* The text of a family total, in one of four styles so the totals vary the
 * way people write them: SUM(...), a + b + ..., a multi-line lower-case
 * sum(...), and two SUMs added. */
static char *family_total_text(const gen_item *items, size_t first, int count, int style) {
    strbuf t = {0};
    switch (style) {
    case 0:
    case 2:
        strbuf_addstr(&t, style == 0 ? "SUM(" : "sum(\n    ");
        for (int i = 0; i < count; i++) {
            if (i)
                strbuf_addstr(&t, style == 2 && i % 5 == 0 ? ",\n    " : ", ");
            put_ref(&t, items[first + (size_t)i].code);
        }
        strbuf_addstr(&t, style == 0 ? ")" : "\n)");
        break;
    case 1:
        for (int i = 0; i < count; i++) {
            if (i)
                strbuf_addstr(&t, " + ");
            put_ref(&t, items[first + (size_t)i].code);
        }
        break;
    default: {
        int half = count / 2;
        strbuf_addstr(&t, "Sum(");
        for (int i = 0; i < half; i++) {
            if (i)
                strbuf_addstr(&t, ", ");
            put_ref(&t, items[first + (size_t)i].code);
        }
        strbuf_addstr(&t, ") + SUM(");
        for (int i = half; i < count; i++) {
            if (i > half)
                strbuf_addstr(&t, ", ");
            put_ref(&t, items[first + (size_t)i].code);
        }
        strbuf_addstr(&t, ")");
    }
    }
    return strbuf_take(&t);
}

/* Builds a ruleset from families, derived formulas and rule and audit tables.
 * Items come in report order: per section, each family's base items and its
 * total, then the section's derived formulas. Every base item gets 1-3 budget
 * item codes; every family one account per three items, bound to the first
 * item of the three. */
static gen_ruleset *build(const gen_family *fams, size_t n_fams, const formula_def *fdefs,
                          size_t n_fdefs, const rule_def *rdefs, size_t n_rdefs,
                          const gen_audit_rule *audits, size_t n_audits) {
    gen_ruleset *rs = calloc(1, sizeof *rs);
    if (!rs)
        return NULL;
    size_t n_base = 0, n_totals = 0, n_accounts = 0;
    for (size_t f = 0; f < n_fams; f++) {
        n_base += (size_t)fams[f].count;
        n_totals += fams[f].total_code != NULL;
        n_accounts += (size_t)(fams[f].count + 2) / 3;
    }
    rs->families = fams;
    rs->n_families = n_fams;
    rs->items = calloc(n_base + n_totals + n_fdefs, sizeof *rs->items);
    rs->accounts = calloc(n_accounts, sizeof *rs->accounts);
    rs->family_first_account = calloc(n_fams, sizeof(int));
    rs->family_n_accounts = calloc(n_fams, sizeof(int));
    rs->audits = audits;
    rs->n_audits = n_audits;
    if (!rs->items || !rs->accounts || !rs->family_first_account || !rs->family_n_accounts)
        goto oom;

    for (int section = 0; section < 4; section++) {
        for (size_t f = 0; f < n_fams; f++) {
            const gen_family *fam = &fams[f];
            if (fam->section != section)
                continue;
            size_t first = rs->n_items;
            rs->family_first_account[f] = (int)rs->n_accounts;
            for (int i = 0; i < fam->count; i++) {
                gen_item *it = &rs->items[rs->n_items++];
                if (i == 0 && fam->lead_code)
                    snprintf(it->code, sizeof it->code, "%s", fam->lead_code);
                else if (fam->count == 1)
                    snprintf(it->code, sizeof it->code, "%s", fam->prefix);
                else
                    snprintf(it->code, sizeof it->code, "%s_%02d", fam->prefix, i + 1);
                if (i == 0 && fam->lead_code && fam->count > 1)
                    sentence_case(it->name, sizeof it->name, fam->lead_code);
                else if (fam->count == 1)
                    snprintf(it->name, sizeof it->name, "%s", fam->name);
                else if ((size_t)i < N_QUALIFIERS)
                    snprintf(it->name, sizeof it->name, "%s - %s", fam->name, qualifiers[i]);
                else
                    snprintf(it->name, sizeof it->name, "%s - %s, phase %zu", fam->name,
                             qualifiers[(size_t)i % N_QUALIFIERS], (size_t)i / N_QUALIFIERS + 1);
                it->family = (int)f;
                it->n_budget = 1 + i % GEN_MAX_BUDGET_CODES;
                for (int k = 0; k < it->n_budget; k++)
                    snprintf(it->budget[k], sizeof it->budget[k], "BI%02u%02u%u",
                             (unsigned)(f + 1) % 100u, (unsigned)(i + 1) % 100u,
                             (unsigned)(k + 1) % 10u);
                if (i % 3 == 0) {
                    gen_account *a = &rs->accounts[rs->n_accounts++];
                    snprintf(a->code, sizeof a->code, "%s.%02d", fam->account, i / 3 + 1);
                    a->item = rs->n_items - 1;
                }
                it->account = rs->family_first_account[f] + i / 3;
            }
            rs->family_n_accounts[f] = (int)rs->n_accounts - rs->family_first_account[f];
            rs->n_base += (size_t)fam->count;
            if (fam->total_code) {
                gen_item *it = &rs->items[rs->n_items];
                snprintf(it->code, sizeof it->code, "%s", fam->total_code);
                snprintf(it->name, sizeof it->name, "%s, total", fam->name);
                it->formula = true;
                it->family = -1;
                it->text = family_total_text(rs->items, first, fam->count, (int)(f % 4));
                if (!it->text)
                    goto oom;
                rs->n_items++;
                rs->n_formula++;
            }
        }
        for (size_t d = 0; d < n_fdefs; d++) {
            if (fdefs[d].section != section)
                continue;
            gen_item *it = &rs->items[rs->n_items++];
            snprintf(it->code, sizeof it->code, "%s", fdefs[d].code);
            snprintf(it->name, sizeof it->name, "%s", fdefs[d].name);
            it->formula = true;
            it->family = -1;
            it->text = strdup(fdefs[d].text);
            if (!it->text)
                goto oom;
            rs->n_formula++;
        }
    }
    for (size_t i = 0; i < rs->n_items; i++)
        rs->items[i].sort_order = 10 * (int)(i + 1);

    /* Expand the family rules into item rules. */
    size_t n_rules = 0;
    for (size_t r = 0; r < n_rdefs; r++) {
        if (!strcmp(rdefs[r].family, "*")) {
            n_rules++;
            continue;
        }
        for (size_t f = 0; f < n_fams; f++)
            if (!strcmp(fams[f].prefix, rdefs[r].family))
                n_rules += (size_t)(rdefs[r].first_n ? rdefs[r].first_n : fams[f].count);
    }
    rs->rules = calloc(n_rules, sizeof *rs->rules);
    if (!rs->rules)
        goto oom;
    for (size_t r = 0; r < n_rdefs; r++) {
        const rule_def *rd = &rdefs[r];
        if (!strcmp(rd->family, "*")) {
            rs->rules[rs->n_rules++] = (gen_alloc_rule){rd->version, "*", rd->driver, rd->scope};
            continue;
        }
        /* A family's base items are contiguous in items[]. */
        for (size_t i = 0; i < rs->n_items; i++) {
            const gen_item *it = &rs->items[i];
            if (it->formula || strcmp(fams[it->family].prefix, rd->family))
                continue;
            int n = rd->first_n ? rd->first_n : fams[it->family].count;
            for (int k = 0; k < n; k++)
                rs->rules[rs->n_rules++] = (gen_alloc_rule){
                    rd->version, rs->items[i + (size_t)k].code, rd->driver, rd->scope};
            break;
        }
    }
    return rs;
oom:
    gen_ruleset_free(rs);
    return NULL;
}

gen_ruleset *gen_ruleset_std(void) {
    return build(std_families, N_OF(std_families), std_formulas, N_OF(std_formulas), std_rules,
                 N_OF(std_rules), std_audits, N_OF(std_audits));
}

gen_ruleset *gen_ruleset_demo(void) {
    gen_ruleset *rs = build(demo_families, N_OF(demo_families), demo_formulas, N_OF(demo_formulas),
                            demo_rules, N_OF(demo_rules), demo_audits, N_OF(demo_audits));
    if (rs)
        rs->narrow_amounts = true;
    return rs;
}

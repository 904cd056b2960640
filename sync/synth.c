/*
 * The synthetic data generator (contract in synth.h, parameters in
 * DESIGN.md "Synthetic data").
 *
 * Shape of a run: reference rows first (admin areas, orgs, dictionaries),
 * then one community after another: its grids, then per micro-grid the
 * places and dwellings it covers and the households, residents and tags
 * living there, then the community's workers and assignments; street,
 * district and department staff last. Rows stream into prepared
 * statements: memory stays at a few hundred KiB whatever the profile.
 *
 * Scope (opts->scope_worker_id): the run is made twice from the same seed.
 * The first pass draws everything and writes nothing, to learn which
 * grids and which org the worker has; the second writes only the rows in
 * scope. Because both passes draw the same numbers in the same order, a
 * scoped database holds exactly the rows (and ids) of the full one that
 * the worker may see.
 *
 * Calibration notes (where DESIGN.md's figures disagree with each other):
 * its household size mix (1 p 25 %, ..., 5+ p 11 %) has a mean of at
 * least 2.54, above the census mean of 2.49 it is meant to reproduce, so
 * one-person households are raised to 27.5 % and 5+ lowered to 9.5 %
 * (mean 2.48). Vacant dwellings (5 %) hold no household. Family types and
 * their age bands were tuned by running tests/bench/bench_synth: seed 42
 * gives 0-14 13.7 %, 60+ 19.5 %, 65+ 14.0 %, 80+ 2.5 %, 2.50 persons per
 * household, 61 households per micro-grid. Tag prevalences follow
 * DESIGN.md per group; together they come to ~18 tags per 100 residents,
 * not the ~80k (~11 per 100) of its volume table, which its own rates do
 * not add up to.
 */
#define GS_MODULE "sync.synth"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdio.h>
#include <string.h>

#include <gridsync/db.h>
#include <gridsync/schema.h>
#include <gridsync/synth.h>

#define DAY_MS INT64_C(86400000)

/* ====================================================================== */
/* PRNG: xoshiro256** seeded through splitmix64.                          */
/* ====================================================================== */

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* splitmix64 spreads any seed, 0 included, over the 256-bit state, so
 * that neighbouring seeds give unrelated streams. */
void gs__synth_rng_seed(struct gs_synth_rng *r, uint64_t seed)
{
	uint64_t x = seed;

	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix(&x);
}

/* k is a constant in 1..63 at every call site. */
static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* xoshiro256** (Blackman and Vigna): fast, 2^256 - 1 period, passes
 * BigCrush; not cryptographic, which test data does not need. Written
 * from the published description. */
uint64_t gs__synth_rng_next(struct gs_synth_rng *r)
{
	uint64_t *s = r->s;
	uint64_t out = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return out;
}

/* Multiply-shift: the bias is below 2^-32, irrelevant for test data, and
 * it costs one draw per call, which keeps streams easy to reason about. */
uint32_t gs__synth_rng_below(struct gs_synth_rng *r, uint32_t n)
{
	return (uint32_t)(((gs__synth_rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

/* Prevalences in DESIGN.md go down to 0.1 %: parts per million keep
 * them exact in integers. */
bool gs__synth_rng_ppm(struct gs_synth_rng *r, uint32_t ppm)
{
	return gs__synth_rng_below(r, 1000000) < ppm;
}

/* Uniform integer in [lo, hi]. */
static int range(struct gs_synth_rng *r, int lo, int hi)
{
	return lo + (int)gs__synth_rng_below(r, (uint32_t)(hi - lo + 1));
}

/* Trimmed normal from the Irwin-Hall sum of 12 uniforms: no libm, and
 * the same bits on every machine. */
static int normal(struct gs_synth_rng *r, int mean, int sd, int lo, int hi)
{
	for (;;) {
		int64_t sum = 0;
		double z;
		int v;

		for (int i = 0; i < 12; i++)
			sum += gs__synth_rng_below(r, 1u << 20);
		z = (double)sum / (double)(1u << 20) - 6.0;
		v = mean + (int)(z * sd + (z >= 0 ? 0.5 : -0.5));
		if (v >= lo && v <= hi)
			return v;
	}
}

/* Index drawn from n integer weights. */
static unsigned pickw(struct gs_synth_rng *r, const uint16_t *w, unsigned n)
{
	uint32_t total = 0;
	uint32_t u;

	for (unsigned i = 0; i < n; i++)
		total += w[i];
	u = gs__synth_rng_below(r, total);
	for (unsigned i = 0; i < n; i++) {
		if (u < w[i])
			return i;
		u -= w[i];
	}
	return n - 1;
}

#define NELEM(a)     (sizeof(a) / sizeof((a)[0]))
#define PICK(r, tab) ((tab)[gs__synth_rng_below((r), (uint32_t)NELEM(tab))])

/* ====================================================================== */
/* Bounded text building.                                                 */
/* ====================================================================== */

/* Appends never overflow: once a piece does not fit, over is set and
 * the text stays as it was. */
struct tb {
	char *p;
	size_t len;
	size_t cap;
	bool over;
};

/* Start empty text in p (cap bytes, NUL included). */
static void tb_init(struct tb *b, char *p, size_t cap)
{
	b->p = p;
	b->len = 0;
	b->cap = cap;
	b->over = cap == 0;
	if (cap > 0)
		p[0] = '\0';
}

/* Append n bytes of s, or mark the text as over its capacity. */
static void tb_putn(struct tb *b, const char *s, size_t n)
{
	if (b->over || b->len + n + 1 > b->cap) {
		b->over = true;
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void tb_put(struct tb *b, const char *s)
{
	tb_putn(b, s, strlen(s));
}

static void tb_int(struct tb *b, long v)
{
	char tmp[24];
	int n = snprintf(tmp, sizeof(tmp), "%ld", v);

	tb_putn(b, tmp, (size_t)n);
}

/* GS_OK, or GS_ETOOBIG with the text emptied. */
static int tb_done(struct tb *b)
{
	if (!b->over)
		return GS_OK;
	if (b->cap > 0)
		b->p[0] = '\0';
	return GS_ETOOBIG;
}

/* ====================================================================== */
/* Tables: names.                                                         */
/* ====================================================================== */

/* Top ten with weights in 1/10,000: the first five sum to 30.8 % as in
 * DESIGN.md, 李 first as in Sichuan. */
static const char *const top_surnames[] = { "李", "王", "张", "刘", "陈",
					    "杨", "黄", "赵", "吴", "周" };
static const uint16_t top_surname_w[] = { 790, 650, 600, 540, 500,
					  310, 220, 200, 200, 190 };
/* The long tail, weights falling linearly (tail_w below). Sichuan-common
 * names (罗 何 邓 曾 彭 廖) sit early. */
static const char *const tail_surnames[] = {
	"罗", "何", "邓", "徐", "胡", "朱", "曾", "彭", "高", "林", "郭", "马",
	"梁", "宋", "郑", "谢", "韩", "唐", "冯", "廖", "董", "萧", "程", "曹",
	"袁", "许", "傅", "沈", "吕", "苏", "卢", "蒋", "蔡", "贾", "丁", "魏",
	"薛", "叶", "余", "潘", "杜", "戴", "夏", "钟", "汪", "田", "任", "姜",
	"范", "方", "石", "姚", "谭", "邹", "熊", "金", "陆", "郝", "孔", "白",
	"崔", "康", "毛", "邱", "秦", "江", "史", "顾", "侯", "邵", "孟", "龙",
	"万", "段", "雷", "钱", "汤", "尹", "黎", "易", "常", "武", "乔", "贺",
	"赖", "龚", "文", "严", "牟", "敬",
};
static const char *const compound_surnames[] = {
	"欧阳", "欧阳", "欧阳", "欧阳", "上官", "司马",
	"诸葛", "司徒", "东方", "皇甫", "令狐", "慕容",
};

static uint32_t tail_w(unsigned i)
{
	return 104 - (uint32_t)((size_t)i * 80 / (NELEM(tail_surnames) - 1));
}

/* A surname: 0.3 % compound, else weighted (top ten, then the tail). */
static const char *surname(struct gs_synth_rng *r)
{
	uint32_t total = 0;
	uint32_t u;

	if (gs__synth_rng_ppm(r, 3000))
		return PICK(r, compound_surnames);
	for (unsigned i = 0; i < NELEM(top_surname_w); i++)
		total += top_surname_w[i];
	for (unsigned i = 0; i < NELEM(tail_surnames); i++)
		total += tail_w(i);
	u = gs__synth_rng_below(r, total);
	for (unsigned i = 0; i < NELEM(top_surname_w); i++) {
		if (u < top_surname_w[i])
			return top_surnames[i];
		u -= top_surname_w[i];
	}
	for (unsigned i = 0; i < NELEM(tail_surnames); i++) {
		if (u < tail_w(i))
			return tail_surnames[i];
		u -= tail_w(i);
	}
	return tail_surnames[0];
}

/* Given-name seeds per birth cohort (≤1949, 1950s, 1960-70s, 1980s,
 * 1990s, 2000s, 2010s, 2020s), from DESIGN.md's sources, mixed with
 * composed names below. */
static const char *const given_m[8][10] = {
	{ "德明", "志明", "福", "贵", "德", "永福", "长生", "正", "国华",
	  "学文" },
	{ "建国", "建华", "国庆", "援朝", "建军", "志强", "卫国", "和平", "军",
	  "明" },
	{ "军", "勇", "伟", "强", "建平", "志刚", "国强", "红军", "斌", "海" },
	{ "伟", "磊", "涛", "超", "鹏", "勇", "杰", "俊杰", "志伟", "明亮" },
	{ "磊", "浩", "鑫", "宇", "杰", "俊", "帅", "子豪", "浩然", "家豪" },
	{ "涛", "浩宇", "浩然", "子轩", "宇航", "俊熙", "博文", "梓豪", "皓",
	  "睿" },
	{ "浩宇", "宇轩", "子墨", "梓睿", "俊宇", "浩轩", "睿", "铭", "梓轩",
	  "沐阳" },
	{ "奕辰", "宇轩", "浩宇", "子墨", "沐宸", "奕泽", "宇航", "梓睿",
	  "一鸣", "承泽" },
};
static const char *const given_f[8][10] = {
	{ "秀英", "桂英", "淑珍", "玉兰", "秀兰", "翠", "凤", "桂兰", "素珍",
	  "玉珍" },
	{ "英", "兰", "秀珍", "桂芳", "玉梅", "淑华", "凤英", "秀兰", "华",
	  "萍" },
	{ "英", "丽", "红", "霞", "燕", "丽华", "红梅", "晓燕", "秀芳", "敏" },
	{ "静", "丽", "婷", "娟", "丹", "敏", "晶", "艳", "雪梅", "丽娟" },
	{ "婷", "倩", "雪", "佳", "欣", "悦", "思雨", "婷婷", "雨婷", "梦瑶" },
	{ "婷", "欣怡", "梓涵", "雨涵", "诗涵", "可馨", "紫涵", "佳怡", "梦琪",
	  "悦" },
	{ "欣怡", "梓涵", "一诺", "诗琪", "语桐", "可欣", "雨桐", "梓萱",
	  "依诺", "若汐" },
	{ "一诺", "依诺", "欣怡", "梓涵", "语桐", "若汐", "沐汐", "安然",
	  "知夏", "梓萱" },
};
/* Characters for composed given names: [0] for people born before 1985,
 * [1] after, so that a grandmother is not called 梓萱. */
static const char *const chars_m[2][20] = {
	{ "伟", "明", "强", "军", "平", "华", "建", "国", "志", "文",
	  "德", "福", "荣", "刚", "勇", "林", "海", "斌", "清", "成" },
	{ "杰", "涛", "鹏", "宇", "浩", "俊", "凯", "鑫", "磊", "睿",
	  "博", "泽", "轩", "辰", "航", "子", "家", "晨", "昊", "铭" },
};
static const char *const chars_f[2][20] = {
	{ "丽", "娟", "敏", "静", "秀", "英", "华", "芳", "燕", "玲",
	  "霞", "红", "梅", "兰", "萍", "凤", "桂", "珍", "琴", "莉" },
	{ "婷", "雪", "琳", "欣", "怡", "涵", "悦", "诗", "雨", "佳",
	  "梦", "思", "琪", "萱", "妍", "桐", "诺", "瑶", "然", "晴" },
};

static unsigned cohort(int birth_year)
{
	static const int ends[] = { 1950, 1960, 1980, 1990, 2000, 2010, 2020 };
	unsigned i = 0;

	while (i < NELEM(ends) && birth_year >= ends[i])
		i++;
	return i;
}

/* A given name: 60 % two characters; half from the cohort's seeds, half
 * composed from a character table. CJK characters here are 3 bytes. */
static void
given_name(struct tb *b, struct gs_synth_rng *r, bool male, int birth_year)
{
	const char *const *seeds = male ? given_m[cohort(birth_year)]
					: given_f[cohort(birth_year)];
	bool two = gs__synth_rng_ppm(r, 600000);
	size_t want = two ? 6 : 3;
	int era = birth_year >= 1985;

	if (gs__synth_rng_below(r, 2) == 0) {
		for (int i = 0; i < 4; i++) {
			const char *s = seeds[gs__synth_rng_below(r, 10)];

			if (strlen(s) == want) {
				tb_put(b, s);
				return;
			}
		}
	}
	for (int i = 0; i < (two ? 2 : 1); i++)
		tb_put(b, male ? PICK(r, chars_m[era]) : PICK(r, chars_f[era]));
}

/* ====================================================================== */
/* Tables: places.                                                        */
/* ====================================================================== */

static const char *const words[] = {
	"桂花", "银杏", "芙蓉", "锦江", "青龙", "白鹭", "金沙", "玉带",
	"文殊", "红星", "龙泉", "东城", "西苑", "太平", "和平", "光华",
	"双林", "府河", "清水", "望江", "石羊", "华兴", "新华", "永丰",
	"长顺", "宽巷", "蜀汉", "杜鹃", "紫荆", "海棠", "翠竹", "梧桐",
	"锦绣", "蓝天", "阳光", "幸福", "和美", "兴隆", "百花", "碧水",
	"枫林", "竹园", "东篱", "南城", "北辰", "青杉", "香樟", "锦华",
};
static const char *const estate_suffix[] = { "苑",   "园",   "花园", "家园",
					     "雅居", "小区", "公寓", "院" };
static const char *const road_suffix[] = { "路",       "街",       "巷",
					   "北路二段", "南路一段", "东街" };
static const char *const mgmt_labels[] = { "物业", "自管", "无物业" };

/* Community archetypes (DESIGN.md): weights, buildings per compound,
 * floors, units per building, dwellings per floor, lift threshold. */
enum { ARCH_OLD, ARCH_COMMODITY, ARCH_RESETTLE, ARCH_VILLAGE, N_ARCH };
static const struct arch {
	uint16_t weight;
	uint8_t bmin, bmax, fmin, fmax, umin, umax, hmin, hmax;
	uint8_t lift_above; /* floors above this have a lift */
	uint16_t mgmt_w[3]; /* 物业 / 自管 / 无物业 */
	uint32_t shops_ppm; /* a compound has street-front shops */
} archs[N_ARCH] = {
	[ARCH_OLD] = { 30, 2, 8, 5, 7, 1, 4, 2, 4, 99, { 0, 40, 60 }, 200000 },
	[ARCH_COMMODITY] = { 45,
			     4,
			     14,
			     11,
			     33,
			     2,
			     4,
			     4,
			     8,
			     0,
			     { 100, 0, 0 },
			     300000 },
	[ARCH_RESETTLE] = { 15,
			    6,
			    16,
			    6,
			    18,
			    2,
			    4,
			    4,
			    6,
			    7,
			    { 70, 30, 0 },
			    200000 },
	[ARCH_VILLAGE] = { 10,
			   6,
			   24,
			   2,
			   5,
			   1,
			   1,
			   1,
			   3,
			   99,
			   { 0, 0, 100 },
			   1000000 },
};
static const char *const shop_names[] = { "便利店",   "面馆",   "药房",
					  "理发店",   "五金店", "茶馆",
					  "快递驿站", "水果店" };

/* ====================================================================== */
/* Tables: people's attributes.                                           */
/* ====================================================================== */

/* Household sizes 1..7, per mille, mean 2.48 (see the top of the file). */
static const uint16_t size_w[] = { 275, 300, 220, 110, 68, 22, 5 };
static const char *const residence_types[] = { "户籍", "流动", "人户分离",
					       "境外" };
static const uint16_t residence_w[] = { 700, 250, 40, 10 };
static const uint16_t residence_rent_w[] = { 300, 600, 80, 20 };
static const char *const ethnicities[] = { "汉族", "藏族",   "彝族", "羌族",
					   "回族", "土家族", "苗族" };
static const uint16_t ethnicity_w[] = { 950, 20, 15, 5, 5, 3, 2 };
static const char *const educations[] = { "未上学", "小学", "初中", "高中",
					  "中专",   "大专", "本科", "研究生" };
/* Adult education by age band: 70+, 50-69, 30-49, 22-29. */
static const uint16_t education_w[4][8] = {
	{ 8, 45, 30, 10, 5, 2, 0, 0 },
	{ 1, 20, 40, 17, 8, 10, 4, 0 },
	{ 0, 3, 22, 15, 10, 22, 23, 5 },
	{ 0, 1, 11, 10, 8, 28, 35, 7 },
};
static const char *const work_labels[] = { "在职", "灵活就业", "失业", "无业",
					   "个体经营" };
static const uint16_t work_w[] = { 65, 15, 5, 10, 5 };

enum { REL_HEAD, REL_SPOUSE, REL_CHILD, REL_PARENT, REL_OTHER };
static const char *const relations[] = { "户主", "配偶", "子女", "父母",
					 "其他" };

/* ====================================================================== */
/* Tables: dictionaries.                                                  */
/* ====================================================================== */

/* Departments: the first eight are the default handlers of categories
 * and exist in every profile. */
static const char *const departments[] = {
	"区城市管理局",
	"区市场监督管理局",
	"区住房和城乡建设局",
	"区消防救援大队",
	"区民政局",
	"区残疾人联合会",
	"区卫生健康局",
	"区燃气有限公司",
	"区生态环境局",
	"区水务局",
	"区交通运输局",
	"区公安分局",
	"区司法局",
	"区人力资源和社会保障局",
	"区教育局",
	"区应急管理局",
	"区综合行政执法局",
	"区规划和自然资源局",
	"区文化广电旅游局",
	"区信访局",
	"区医疗保障局",
	"区退役军人事务局",
	"区妇女联合会",
	"区总工会",
	"团区委",
	"区供电公司",
	"区自来水公司",
	"区通信管理办公室",
	"区公园城市建设局",
	"区网络理政办公室",
};
enum { DEPT_CG, DEPT_SJ, DEPT_ZJ, DEPT_XF, DEPT_MZ, DEPT_CL, DEPT_WJ, DEPT_RQ };

/* Categories: 7 top levels (DESIGN.md's mix), 3 levels. Level-3 rows
 * carry title and description templates: $C compound, $B building,
 * $U unit, $R road, $N door number, $H room, $K the room above,
 * $P a name, $A an age (80-95). */
struct cat {
	const char *code;
	const char *name;
	const char *grade; /* default_grade, level 3 only */
	int8_t handler;    /* departments[] index or -1 */
	const char *title;
	const char *desc;
};

static const struct cat cats[] = {
	{ "01", "环境卫生", NULL, DEPT_CG, NULL, NULL },
	{ "0101", "垃圾处理", NULL, DEPT_CG, NULL, NULL },
	{ "010101", "生活垃圾堆积", "blue", DEPT_CG, "$C垃圾堆积未清运",
	  "$C$B旁垃圾收集点生活垃圾堆积，连续两天未清运，异味较重" },
	{ "010102", "建筑垃圾乱倒", "blue", DEPT_CG, "$R建筑垃圾乱倒",
	  "$R$N附近有人夜间倾倒装修建筑垃圾，占用人行道" },
	{ "010103", "垃圾桶满溢破损", "blue", DEPT_CG, "$C垃圾桶满溢",
	  "$C北门垃圾桶满溢且桶盖破损，垃圾散落地面" },
	{ "0102", "乱堆乱放", NULL, DEPT_CG, NULL, NULL },
	{ "010201", "楼道堆放杂物", "blue", DEPT_CG, "$C$B$U楼道堆物",
	  "$C$B$U楼道堆放纸箱杂物，堵塞疏散通道" },
	{ "010202", "占道堆物", "blue", DEPT_CG, "$R占道堆放物品",
	  "$R$N门前长期堆放建材和废旧家具，占用人行道" },
	{ "0103", "污水与异味", NULL, DEPT_CG, NULL, NULL },
	{ "010301", "污水外溢", "yellow", DEPT_CG, "$C污水外溢",
	  "$C$B楼下化粪池污水外溢，气味刺鼻，居民出行不便" },
	{ "010302", "下水道堵塞", "blue", DEPT_CG, "$C$B下水道堵塞",
	  "$C$B$U一楼下水道堵塞，雨天污水倒灌进住户家中" },
	{ "02", "安全隐患", NULL, DEPT_XF, NULL, NULL },
	{ "0201", "消防安全", NULL, DEPT_XF, NULL, NULL },
	{ "020101", "消防通道占用", "yellow", DEPT_XF, "$C消防通道被占用",
	  "$C北门消防通道长期被私家车占用" },
	{ "020102", "疏散通道堵塞", "yellow", DEPT_XF, "$C$B疏散通道堵塞",
	  "$C$B$U安全出口被杂物堵塞，防火门常开且闭门器损坏" },
	{ "020103", "消防设施损坏", "yellow", DEPT_XF, "$C$B消防设施损坏",
	  "$C$B各楼层灭火器过期，消火栓箱内水带缺失" },
	{ "0202", "电动车安全", NULL, DEPT_XF, NULL, NULL },
	{ "020201", "电动车入户", "yellow", DEPT_XF, "$C$B电动车入户",
	  "$C$B$U有住户将电动车推入电梯带回家中充电" },
	{ "020202", "飞线充电", "yellow", DEPT_XF, "$C$B飞线充电",
	  "$C$B$H住户从窗口拉电线下楼给电动车飞线充电" },
	{ "0203", "燃气安全", NULL, DEPT_RQ, NULL, NULL },
	{ "020301", "燃气泄漏", "red", DEPT_RQ, "$C$B疑似燃气泄漏",
	  "$C$B$U楼道内有明显燃气味，疑似燃气泄漏，已通知住户开窗通风" },
	{ "020302", "燃气管道老化", "yellow", DEPT_RQ, "$C燃气管道老化",
	  "$C$B外墙燃气立管锈蚀严重，部分卡箍脱落" },
	{ "0204", "高空坠物", NULL, DEPT_ZJ, NULL, NULL },
	{ "020401", "高空抛物", "yellow", DEPT_ZJ, "$C$B高空抛物",
	  "$C$B多次有人从高层抛下垃圾袋，险些砸中行人" },
	{ "020402", "外墙脱落", "yellow", DEPT_ZJ, "$C$B外墙脱落",
	  "$C$B外墙瓷砖松动脱落，楼下为人员通行区域" },
	{ "03", "设施损坏", NULL, DEPT_ZJ, NULL, NULL },
	{ "0301", "照明设施", NULL, DEPT_ZJ, NULL, NULL },
	{ "030101", "路灯不亮", "blue", DEPT_ZJ, "$R路灯不亮",
	  "$R$N至路口一段路灯连续多晚不亮，夜间行人通行存在安全隐患" },
	{ "0302", "井盖", NULL, DEPT_ZJ, NULL, NULL },
	{ "030201", "井盖缺失破损", "yellow", DEPT_ZJ, "$R井盖破损",
	  "$R$N人行道上井盖破损下陷，已用锥桶临时围挡" },
	{ "0303", "管道", NULL, DEPT_ZJ, NULL, NULL },
	{ "030301", "供水管道破裂", "yellow", DEPT_ZJ, "$C供水管道破裂",
	  "$C$B旁供水管道破裂漏水，路面积水严重" },
	{ "030302", "排水管道破损", "blue", DEPT_ZJ, "$C$B排水管破损",
	  "$C$B外墙排水管破损，雨天污水顺墙流下" },
	{ "0304", "电梯", NULL, DEPT_SJ, NULL, NULL },
	{ "030401", "电梯困人", "red", DEPT_SJ, "$C$B$U电梯困人",
	  "$C$B$U电梯突然停在两层之间，轿厢内有人被困" },
	{ "030402", "电梯停运", "yellow", DEPT_SJ, "$C$B$U电梯停运",
	  "$C$B$U电梯故障停运三天，高层老人上下楼困难" },
	{ "04", "街面秩序", NULL, DEPT_CG, NULL, NULL },
	{ "0401", "占道经营", NULL, DEPT_CG, NULL, NULL },
	{ "040101", "流动摊贩", "blue", DEPT_CG, "$R流动摊贩占道经营",
	  "$R$N附近有流动摊贩占道经营，早晚高峰影响通行" },
	{ "040102", "店外经营", "blue", DEPT_CG, "$R$N店外经营",
	  "$R$N餐馆在店外摆放桌椅经营，油烟和噪音扰民" },
	{ "0402", "乱停乱放", NULL, DEPT_CG, NULL, NULL },
	{ "040201", "机动车乱停", "blue", DEPT_CG, "$R机动车乱停",
	  "$R$N门口机动车乱停放，占用盲道和人行道" },
	{ "040202", "共享单车乱停", "blue", DEPT_CG, "$R共享单车堆积",
	  "$R地铁口共享单车大量堆积，行人无法通行" },
	{ "0403", "违规广告", NULL, DEPT_CG, NULL, NULL },
	{ "040301", "乱贴小广告", "blue", DEPT_CG, "$C$B小广告",
	  "$C$B$U楼道墙面被张贴大量开锁、疏通小广告" },
	{ "05", "矛盾纠纷", NULL, -1, NULL, NULL },
	{ "0501", "邻里纠纷", NULL, -1, NULL, NULL },
	{ "050101", "噪音扰民", "blue", -1, "$C$B噪音纠纷",
	  "$C$B$H住户反映楼上$K夜间噪音，双方多次争执" },
	{ "050102", "漏水纠纷", "blue", -1, "$C$B漏水纠纷",
	  "$C$B$H住户反映楼上$K卫生间漏水，协商未果" },
	{ "0502", "物业纠纷", NULL, -1, NULL, NULL },
	{ "050201", "物业服务纠纷", "blue", -1, "$C物业服务纠纷",
	  "$C多名业主反映物业服务不到位，电梯和绿化长期无人维护" },
	{ "050202", "停车纠纷", "blue", -1, "$C停车纠纷",
	  "$C业主与物业因地面停车位收费问题发生争执" },
	{ "0503", "租赁纠纷", NULL, -1, NULL, NULL },
	{ "050301", "房屋租赁纠纷", "blue", -1, "$C$B租赁纠纷",
	  "$C$B$H租户与房东因押金退还发生纠纷，双方情绪激动" },
	{ "0504", "家庭纠纷", NULL, -1, NULL, NULL },
	{ "050401", "家庭矛盾", "yellow", -1, "$C$B家庭矛盾",
	  "$C$B$H家庭成员因赡养问题发生争吵，需社区调解" },
	{ "06", "民生服务", NULL, DEPT_MZ, NULL, NULL },
	{ "0601", "养老服务", NULL, DEPT_MZ, NULL, NULL },
	{ "060101", "助餐助医", "blue", DEPT_MZ, "$C$B独居老人代购药品",
	  "独居老人$P（$A岁）行动不便，需协助代购药品" },
	{ "060102", "居家照护", "blue", DEPT_MZ, "$C$B老人居家照护需求",
	  "$C$B$H老人$P（$A岁）近期摔伤，子女不在身边，申请居家照护服务" },
	{ "0602", "助残服务", NULL, DEPT_CL, NULL, NULL },
	{ "060201", "助残申请", "blue", DEPT_CL, "$C$B助残服务申请",
	  "$C$B$H残疾人家庭申请无障碍改造和辅具适配" },
	{ "0603", "就业服务", NULL, DEPT_MZ, NULL, NULL },
	{ "060301", "就业帮扶", "blue", DEPT_MZ, "$C$B就业帮扶需求",
	  "$C$B$H居民失业半年，希望社区推荐就近就业岗位" },
	{ "0604", "托育服务", NULL, DEPT_WJ, NULL, NULL },
	{ "060401", "托育咨询", "blue", DEPT_WJ, "$C托育服务咨询",
	  "$C$B$H住户有两岁幼儿，咨询附近普惠托育机构" },
	{ "0605", "证明代办", NULL, -1, NULL, NULL },
	{ "060501", "证明开具", "blue", -1, "$C$B证明开具",
	  "$C$B$H居民申请开具居住证明，行动不便需上门办理" },
	{ "060502", "代办事项", "blue", -1, "$C$B代办服务",
	  "$C$B$H高龄老人需代办高龄津贴认证" },
	{ "07", "其他咨询", NULL, -1, NULL, NULL },
	{ "0701", "政策咨询", NULL, -1, NULL, NULL },
	{ "070101", "政策咨询", "blue", -1, "$C政策咨询",
	  "$C居民咨询老旧院落改造政策和申报流程" },
	{ "0702", "其他事项", NULL, -1, NULL, NULL },
	{ "070201", "其他事项", "blue", -1, "$C其他事项",
	  "$C$B居民反映小区宠物犬未拴绳，存在伤人隐患" },
};
#define N_CATS NELEM(cats)

/* DESIGN.md's issue mix over the seven top levels, in percent. */
static const uint16_t top_w[] = { 28, 18, 14, 12, 10, 12, 6 };
static const char *const top_domain[] = { "city_event",     "city_event",
					  "city_component", "city_event",
					  "social",         "service",
					  "service" };

/* Special-population tags. Restricted ones (综治) never leave the
 * server; sensitive ones are PIPL art. 28 data. */
struct tagdef {
	const char *code;
	const char *name;
	const char *grp;
	const char *sensitivity;
	int device_visible;
	int interval_days;
	const char *source;
};
static const struct tagdef tagdefs[] = {
	{ "elder_80", "80岁以上老人", "老年人", "normal", 1, 30, "民政" },
	{ "elder_alone", "独居老人", "老年人", "sensitive", 1, 30, "device" },
	{ "elder_empty_nest", "空巢老人", "老年人", "sensitive", 1, 30,
	  "device" },
	{ "elder_disabled", "失能失智老人", "老年人", "sensitive", 1, 7,
	  "卫健" },
	{ "dis_limb", "肢体残疾", "残疾人", "sensitive", 1, 30, "残联" },
	{ "dis_visual", "视力残疾", "残疾人", "sensitive", 1, 30, "残联" },
	{ "dis_hearing", "听力残疾", "残疾人", "sensitive", 1, 30, "残联" },
	{ "dis_mental", "精神残疾", "残疾人", "sensitive", 1, 30, "残联" },
	{ "dis_intellect", "智力残疾", "残疾人", "sensitive", 1, 30, "残联" },
	{ "dis_speech", "言语残疾", "残疾人", "sensitive", 1, 30, "残联" },
	{ "dis_multiple", "多重残疾", "残疾人", "sensitive", 1, 30, "残联" },
	{ "dibao", "低保对象", "社会救助", "sensitive", 1, 30, "民政" },
	{ "tekun", "特困供养人员", "社会救助", "sensitive", 1, 30, "民政" },
	{ "low_income", "低收入家庭", "社会救助", "sensitive", 1, 90, "民政" },
	{ "child_left", "留守儿童", "儿童", "sensitive", 1, 30, "民政" },
	{ "child_plight", "困境儿童", "儿童", "sensitive", 1, 30, "民政" },
	{ "need_employment", "就业帮扶需求", "需求", "normal", 1, 90,
	  "device" },
	{ "need_childcare", "托育需求", "需求", "normal", 1, 90, "device" },
	{ "zz_correction", "社区矫正对象", "综治", "restricted", 0, 30,
	  "司法" },
	{ "zz_released", "刑满释放人员", "综治", "restricted", 0, 30, "司法" },
	{ "zz_drug", "社区戒毒康复人员", "综治", "restricted", 0, 30, "司法" },
	{ "zz_petition", "重点信访人员", "综治", "restricted", 0, 30, "司法" },
	{ "zz_mental", "严重精神障碍患者", "综治", "restricted", 0, 30,
	  "卫健" },
};
enum {
	TAG_E80,
	TAG_ALONE,
	TAG_NEST,
	TAG_EDIS,
	TAG_DIS0, /* seven disability types follow */
	TAG_DIBAO = TAG_DIS0 + 7,
	TAG_TEKUN,
	TAG_LOWINC,
	TAG_CHILD_LEFT,
	TAG_CHILD_PLIGHT,
	TAG_NEED_JOB,
	TAG_NEED_CARE,
	TAG_ZZ0, /* five restricted types follow */
};
static const uint16_t dis_w[] = { 45, 13, 13, 9, 8, 2, 10 };
static const uint16_t dis_grade_w[] = { 10, 20, 30, 40 };
static const char *const dis_grades[] = { "一级", "二级", "三级", "四级" };
static const uint16_t zz_w[] = { 30, 30, 15, 10, 15 };

/* SLA defaults of DESIGN.md: handling per grade, hotline stages, the
 * callback after closing and the 3-hour mobilization. */
static const struct sla {
	const char *grade;
	const char *stage;
	int minutes;
	const char *calendar;
} slas[] = {
	{ "red", "handle", 120, "natural" },
	{ "yellow", "handle", 1440, "natural" },
	{ "blue", "handle", 4320, "natural" },
	{ NULL, "consult", 3 * 1440, "working" },
	{ NULL, "complaint", 13 * 1440, "working" },
	{ NULL, "callback", 1440, "working" },
	{ NULL, "mobilization", 180, "natural" },
};

/* ====================================================================== */
/* Profiles.                                                              */
/* ====================================================================== */

/* What a profile varies. Everything else (household sizes, ages, tags,
 * archetypes) is DESIGN.md's and the same for every profile. */
struct profile {
	const char *name;
	unsigned streets;
	unsigned comms_per_street;
	unsigned micro_total; /* spread evenly over the communities */
	unsigned gen_min, gen_max;
	unsigned cs_min, cs_max;
	unsigned sc_per_street;
	unsigned dc;
	unsigned n_depts;
	unsigned n_property;
	unsigned dh_per_dept;
	bool demo; /* compounds alternate 老旧院落 / 商品房 */
};

static const struct profile profile_demo = {
	"demo", 1, 1, 5, 2, 2, 5, 5, 1, 1, 8, 2, 1, true,
};
static const struct profile profile_district = {
	"district", 12, 10, 5000, 6, 10, 4, 6, 10, 30, 30, 10, 2, false,
};

/* ====================================================================== */
/* Generator state.                                                       */
/* ====================================================================== */

/* Index layout of areas[]: 0 city, 1 district, then streets, then
 * communities, so parents always precede children. */
enum { AREA_CITY, AREA_DISTRICT, AREA_STREET, AREA_COMMUNITY };
static const char *const area_levels[] = { "city", "district", "street",
					   "community" };
enum { ORG_STATION, ORG_STREET, ORG_DISTRICT, ORG_DEPT, ORG_PROPERTY };
static const char *const org_kinds[] = { "community_station", "street_center",
					 "district_center", "department",
					 "property" };
enum { GRID_TOTAL, GRID_GENERAL, GRID_MICRO };
static const char *const grid_levels[] = { "community_total", "general",
					   "micro" };

struct area {
	char id[GS_UUID_LEN];
	char code[13];
	int parent;
	uint8_t level;
	bool in; /* scope: written */
};

struct org {
	char id[GS_UUID_LEN];
	int area;
	uint8_t kind;
};

struct grid {
	char id[GS_UUID_LEN];
	char code[18];
	int community; /* index into comms */
	int parent;    /* grid index, -1 for the total grid */
	int target;    /* target households */
	uint8_t level;
	bool assigned; /* pass 1: the scope worker is assigned here */
	bool d_in;     /* scope: its households are written */
	double lat, lng;
};

struct comm {
	int area;
	int org; /* its community station */
	int total;
	int first_general, n_general;
	int first_micro, n_micro;
	double lat, lng;
	char name[32];
	char roads[4][32];
	bool in;
};

/* Where the next dwelling goes: compound, building, unit, floor, slot. */
/* Where the next dwelling goes: the open compound, building and unit,
 * and the next floor and flat in it. Micro-grids take flats from it in
 * order, so a micro-grid covers whole buildings and units except where
 * its household target cuts a unit at a floor. */
struct cursor {
	int arch; /* -1: nothing open yet */
	int buildings_left;
	int b_no, floors, units, per_floor, u_no, floor, slot;
	bool lift;
	char compound_id[GS_UUID_LEN];
	char compound_name[64];
	char addr[64];
	char building_id[GS_UUID_LEN];
	char building_addr[128];
	char unit_id[GS_UUID_LEN];
	double lat, lng;
	int door; /* next door number on the community's roads */
};

enum {
	ST_AREA,
	ST_GRID,
	ST_PLACE,
	ST_DWELLING,
	ST_ORG,
	ST_WORKER,
	ST_ASSIGNMENT,
	ST_CATEGORY,
	ST_TAGDEF,
	ST_SLA,
	ST_RULE,
	ST_HOUSEHOLD,
	ST_RESIDENT,
	ST_TAG,
	N_ST
};

/*
 * One INSERT per table with an explicit column list: the columns a seed
 * leaves alone (server_seq, deleted, updated_*) take the schema's
 * defaults (NULL, 0, NULL), and a later migration that appends a column
 * does not break the generator. Seeded D rows carry origin 'server'.
 */
static const char *const insert_sql[N_ST] = {
	"INSERT INTO admin_area(id,code,level,parent_id,name)"
	" VALUES(?1,?2,?3,?4,?5)",
	"INSERT INTO grid(id,code,level,community_id,parent_grid_id,name,"
	"target_households,lat,lng,valid_from) VALUES(?1,?2,?3,?4,?5,?6,?7,"
	"?8,?9,?10)",
	"INSERT INTO place(id,kind,parent_id,grid_id,name,addr_text,floors,"
	"has_lift,property_mgmt,lat,lng) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,"
	"?10,?11)",
	"INSERT INTO dwelling(id,place_id,grid_id,room_no,floor,usage)"
	" VALUES(?1,?2,?3,?4,?5,?6)",
	"INSERT INTO org(id,kind,name,area_id) VALUES(?1,?2,?3,?4)",
	"INSERT INTO worker(id,name,phone_masked,org_id,role,is_volunteer,"
	"active) VALUES(?1,?2,?3,?4,?5,?6,1)",
	"INSERT INTO assignment(id,worker_id,grid_id,duty,valid_from)"
	" VALUES(?1,?2,?3,?4,?5)",
	"INSERT INTO category(id,code,parent_id,level,domain,name,"
	"default_grade,default_handler_org_id,needs_photo,active)"
	" VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,1)",
	"INSERT INTO tag_def(code,name,grp,sensitivity,device_visible,"
	"visit_interval_days) VALUES(?1,?2,?3,?4,?5,?6)",
	"INSERT INTO sla_policy(id,category_id,grade,stage,limit_minutes,"
	"calendar) VALUES(?1,?2,?3,?4,?5,?6)",
	"INSERT INTO transition_rule(from_state,to_state,role,requires,"
	"offline_ok) VALUES(?1,?2,?3,?4,?5)",
	"INSERT INTO household(id,dwelling_id,grid_id,head_resident_id,size,"
	"residence_type,tenure,phone_enc,status,last_visit_at,hlc,origin,"
	"created_at) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,'active',?9,?10,'server',"
	"?11)",
	"INSERT INTO resident(id,household_id,name,gender,birth_date,"
	"relation,id_no_enc,id_no_hmac,id_no_masked,ethnicity,education,"
	"marital,employment,phone_enc,health_note_enc,presence,hlc,origin,"
	"created_at) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,"
	"?15,?16,?17,'server',?18)",
	"INSERT INTO resident_tag(id,resident_id,tag_code,grade,source,"
	"valid_from,hlc,origin) VALUES(?1,?2,?3,?4,?5,?6,?7,'server')",
};

/* The state of one run. Arrays are indexed by generation order; the
 * PRNG, the id counter and the ID-number counters restart per pass. */
struct gen {
	struct gs_ctx *ctx;
	sqlite3 *db;
	const struct profile *pf;
	uint64_t seed;
	struct gs_synth_rng rng;
	int64_t start_ms;
	int64_t start_day;
	char start_ts[GS_TIME_LEN];
	uint64_t id_seq;
	bool valid_checksum;

	/* Scope: pass 1 is dry (draws, never writes) and records what the
	 * worker has; pass 2 writes what the flags allow. */
	const char *scope_worker;
	bool scoped;
	bool dry;
	bool capture; /* pass 1: the worker being generated is the one */
	bool found;
	int scope_org;

	struct area *areas;
	size_t n_areas;
	struct org *orgs;
	size_t n_orgs;
	int first_dept, first_property, first_street_org, district_org;
	struct comm *comms;
	size_t n_comms;
	struct grid *grids;
	size_t n_grids, cap_grids;
	char (*cat_ids)[GS_UUID_LEN];

	/* ID number sequences per (birth day, gender), so that no two
	 * residents share an ID number: a resident a device registers again
	 * under a number (its HMAC) already in the grid is merged by the
	 * server into the first (merged_into); seeded rows never are. */
	uint16_t *id_ctr;
	int64_t id_ctr_first_day;
	size_t id_ctr_days;

	struct cursor cur;

	EVP_CIPHER_CTX *aes;
	EVP_MAC *mac;
	EVP_MAC_CTX *hmac;

	sqlite3_stmt *st[N_ST];
	struct gs_synth_stats stats;
};

/* ====================================================================== */
/* Ids, times, coordinates.                                               */
/* ====================================================================== */

static const char hexd[] = "0123456789abcdef";

/* UUIDv7 layout: 48-bit ms = start + (n >> 12), version, 12-bit rand_a =
 * n & 0xfff, variant, 62 random bits. */
static void next_id(struct gen *g, char out[GS_UUID_LEN])
{
	uint64_t n = g->id_seq++;
	uint64_t ms = (uint64_t)g->start_ms + (n >> 12);
	uint64_t rb = gs__synth_rng_next(&g->rng);
	uint8_t b[16];
	size_t o = 0;

	for (int i = 0; i < 6; i++)
		b[i] = (uint8_t)(ms >> (40 - 8 * i));
	b[6] = (uint8_t)(0x70 | ((n >> 8) & 0x0f));
	b[7] = (uint8_t)(n & 0xff);
	b[8] = (uint8_t)(0x80 | (rb & 0x3f));
	for (int i = 9; i < 16; i++)
		b[i] = (uint8_t)(rb >> (8 * (i - 8)));
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hexd[b[i] >> 4];
		out[o++] = hexd[b[i] & 15];
	}
	out[o] = '\0';
}

/* "YYYY-MM-DD" of a day number (days since 1970-01-01). */
static void day_text(char out[11], int64_t day)
{
	char ts[GS_TIME_LEN];

	gs__time_format(ts, day * DAY_MS);
	memcpy(out, ts, 10);
	out[10] = '\0';
}

/* Write v as exactly n decimal digits (v < 10^n by the caller's
 * bounds), no NUL. */
static void digits(char *out, unsigned v, int n)
{
	for (int i = n - 1; i >= 0; i--, v /= 10)
		out[i] = (char)('0' + v % 10);
}

/* Central Chengdu; metres to degrees at 30.66° N. */
#define CENTRE_LAT    30.66
#define CENTRE_LNG    104.07
#define M_PER_DEG_LAT 111320.0
#define M_PER_DEG_LNG 95760.0

static double round6(double v)
{
	return (double)(int64_t)(v * 1e6 + (v >= 0 ? 0.5 : -0.5)) / 1e6;
}

/* Move (lat, lng) by a uniform point of the disc of radius metres. */
static void jitter(struct gs_synth_rng *r, double *lat, double *lng, int radius)
{
	int dx;
	int dy;

	do {
		dx = range(r, -radius, radius);
		dy = range(r, -radius, radius);
	} while ((int64_t)dx * dx + (int64_t)dy * dy >
		 (int64_t)radius * radius);
	*lat = round6(*lat + dy / M_PER_DEG_LAT);
	*lng = round6(*lng + dx / M_PER_DEG_LNG);
}

/* ====================================================================== */
/* Crypto.                                                                */
/* ====================================================================== */

/* Demo keys: SHA-256 of a fixed label. Published on purpose. */
static void demo_key(uint8_t out[32], const char *label)
{
	gs__sha256(out, label, strlen(label));
}

#define DATA_KEY_LABEL  "gridsync synth demo data key v1"
#define INDEX_KEY_LABEL "gridsync synth demo index key v1"

/*
 * The cipher and MAC contexts of a run, keyed once: per value only the
 * nonce (AES-GCM) or nothing (HMAC) changes, which keeps 750k residents
 * to a few seconds of crypto. Either out may be NULL. On failure the
 * caller still frees what was made (crypto_close takes NULLs).
 */
static int crypto_open(struct gs_ctx *ctx,
		       EVP_CIPHER_CTX **aes_out,
		       EVP_MAC **mac_out,
		       EVP_MAC_CTX **hmac_out)
{
	uint8_t key[32];
	OSSL_PARAM params[2];
	int rc = GS_OK;

	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
						     "SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (aes_out != NULL) {
		*aes_out = EVP_CIPHER_CTX_new();
		demo_key(key, DATA_KEY_LABEL);
		if (*aes_out == NULL ||
		    EVP_EncryptInit_ex(*aes_out, EVP_aes_256_gcm(), NULL, NULL,
				       NULL) != 1 ||
		    EVP_CIPHER_CTX_ctrl(*aes_out, EVP_CTRL_GCM_SET_IVLEN, 12,
					NULL) != 1 ||
		    EVP_EncryptInit_ex(*aes_out, NULL, NULL, key, NULL) != 1)
			rc = gs__err(ctx, GS_ENOMEM, "synth: AES-GCM setup");
	}
	if (rc == GS_OK && mac_out != NULL) {
		*mac_out = EVP_MAC_fetch(NULL, "HMAC", NULL);
		*hmac_out = *mac_out != NULL ? EVP_MAC_CTX_new(*mac_out) : NULL;
		demo_key(key, INDEX_KEY_LABEL);
		if (*hmac_out == NULL ||
		    EVP_MAC_init(*hmac_out, key, sizeof(key), params) != 1)
			rc = gs__err(ctx, GS_ENOMEM, "synth: HMAC setup");
	}
	return rc;
}

/* All three accept NULL. */
static void crypto_close(EVP_CIPHER_CTX *aes, EVP_MAC *mac, EVP_MAC_CTX *h)
{
	EVP_CIPHER_CTX_free(aes);
	EVP_MAC_CTX_free(h);
	EVP_MAC_free(mac);
}

/* HMAC-SHA256 under the context's key (EVP_MAC_init without a key
 * restarts with the one already set). */
static int
hmac_hex(EVP_MAC_CTX *h, char out[GS_SYNTH_HMAC_HEX_LEN], const char *msg)
{
	uint8_t mac[32];
	size_t n = 0;

	if (EVP_MAC_init(h, NULL, 0, NULL) != 1 ||
	    EVP_MAC_update(h, (const uint8_t *)msg, strlen(msg)) != 1 ||
	    EVP_MAC_final(h, mac, &n, sizeof(mac)) != 1 || n != sizeof(mac))
		return GS_ERROR;
	gs__hex(out, mac, sizeof(mac));
	return GS_OK;
}

/*
 * Seal pt for column aad into out (room for strlen(pt) +
 * GS_SYNTH_ENC_OVERHEAD). The nonce is drawn even in a dry pass, so that
 * both passes of a scoped run stay in step.
 */
static int seal(struct gen *g,
		uint8_t *out,
		size_t *len_out,
		const char *pt,
		const char *aad)
{
	uint64_t a = gs__synth_rng_next(&g->rng);
	uint64_t b = gs__synth_rng_next(&g->rng);
	size_t n = strlen(pt);
	int l1 = 0;
	int l2 = 0;

	out[0] = GS_SYNTH_SUITE_DEMO;
	for (int i = 0; i < 8; i++)
		out[1 + i] = (uint8_t)(a >> (8 * i));
	for (int i = 0; i < 4; i++)
		out[9 + i] = (uint8_t)(b >> (8 * i));
	*len_out = n + GS_SYNTH_ENC_OVERHEAD;
	if (g->dry)
		return GS_OK;
	if (EVP_EncryptInit_ex(g->aes, NULL, NULL, NULL, out + 1) != 1 ||
	    EVP_EncryptUpdate(g->aes, NULL, &l1, (const uint8_t *)aad,
			      (int)strlen(aad)) != 1 ||
	    EVP_EncryptUpdate(g->aes, out + 13, &l1, (const uint8_t *)pt,
			      (int)n) != 1 ||
	    EVP_EncryptFinal_ex(g->aes, out + 13 + l1, &l2) != 1 ||
	    EVP_CIPHER_CTX_ctrl(g->aes, EVP_CTRL_GCM_GET_TAG, 16,
				out + 13 + n) != 1)
		return gs__err(g->ctx, GS_ERROR, "synth: AES-GCM seal failed");
	return GS_OK;
}

/* Inverse of seal(), with a fresh context: tests and tools only. */
int gs__synth_open(struct gs_ctx *ctx,
		   char *out,
		   size_t cap,
		   size_t *len_out,
		   const void *blob,
		   size_t blob_len,
		   const char *aad)
{
	const uint8_t *p = blob;
	EVP_CIPHER_CTX *c = NULL;
	uint8_t key[32];
	size_t n;
	int l = 0;
	int rc = GS_OK;

	GS_CHECK_ARG(out != NULL && blob != NULL && aad != NULL);
	if (blob_len < GS_SYNTH_ENC_OVERHEAD || p[0] != GS_SYNTH_SUITE_DEMO)
		return gs__err(ctx, GS_ECORRUPT, "synth: not a sealed value");
	n = blob_len - GS_SYNTH_ENC_OVERHEAD;
	if (n + 1 > cap)
		return gs__err(ctx, GS_ETOOBIG, "synth: %zu bytes", n);
	demo_key(key, DATA_KEY_LABEL);
	c = EVP_CIPHER_CTX_new();
	if (c == NULL)
		return gs__err(ctx, GS_ENOMEM, "synth: AES-GCM setup");
	if (EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) != 1 ||
	    EVP_DecryptInit_ex(c, NULL, NULL, key, p + 1) != 1 ||
	    EVP_DecryptUpdate(c, NULL, &l, (const uint8_t *)aad,
			      (int)strlen(aad)) != 1 ||
	    EVP_DecryptUpdate(c, (uint8_t *)out, &l, p + 13, (int)n) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16,
				(void *)(p + 13 + n)) != 1 ||
	    EVP_DecryptFinal_ex(c, (uint8_t *)out + l, &l) != 1)
		rc = gs__err(ctx, GS_ECORRUPT,
			     "synth: sealed value does not authenticate");
	EVP_CIPHER_CTX_free(c);
	if (rc != GS_OK) {
		out[0] = '\0';
		return rc;
	}
	out[n] = '\0';
	if (len_out != NULL)
		*len_out = n;
	return GS_OK;
}

/* The generator's HMAC, one-off (a MAC context per call). */
int gs__synth_id_hmac(struct gs_ctx *ctx,
		      char out[GS_SYNTH_HMAC_HEX_LEN],
		      const char *id_no)
{
	EVP_MAC *mac = NULL;
	EVP_MAC_CTX *h = NULL;
	int rc;

	GS_CHECK_ARG(out != NULL && id_no != NULL);
	rc = crypto_open(ctx, NULL, &mac, &h);
	if (rc == GS_OK && hmac_hex(h, out, id_no) != GS_OK)
		rc = gs__err(ctx, GS_ERROR, "synth: HMAC failed");
	crypto_close(NULL, mac, h);
	return rc;
}

/* GB 11643: weights 2^(17-i) mod 11, the sum mod 11 indexes the map. */
char gs__synth_id_check(const char *id_no)
{
	static const uint8_t w[17] = { 7, 9, 10, 5,  8, 4, 2, 1, 6,
				       3, 7, 9,  10, 5, 8, 4, 2 };
	static const char map[] = "10X98765432";
	unsigned sum = 0;

	for (int i = 0; i < 17; i++)
		sum += (unsigned)(id_no[i] - '0') * w[i];
	return map[sum % 11];
}

/* ====================================================================== */
/* Writing rows.                                                          */
/* ====================================================================== */

static void bt(sqlite3_stmt *st, int i, const char *s)
{
	if (s != NULL)
		sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

static void bi(sqlite3_stmt *st, int i, int64_t v)
{
	sqlite3_bind_int64(st, i, v);
}

static void bd(sqlite3_stmt *st, int i, double v)
{
	sqlite3_bind_double(st, i, v);
}

static void bb(sqlite3_stmt *st, int i, const void *p, size_t n)
{
	if (p != NULL)
		sqlite3_bind_blob(st, i, p, (int)n, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

static const char *const table_names[N_ST] = {
	"admin_area", "grid",         "place",           "dwelling",
	"org",        "worker",       "assignment",      "category",
	"tag_def",    "sla_policy",   "transition_rule", "household",
	"resident",   "resident_tag",
};

/* Run the bound insert and count it. Bindings point at the caller's
 * buffers, which live until this returns. */
static int put(struct gen *g, int which, size_t *count)
{
	sqlite3_stmt *st = g->st[which];
	int rc = sqlite3_step(st);

	if (rc != SQLITE_DONE) {
		rc = gs__err_from_sqlite(g->ctx, rc, g->db);
		sqlite3_reset(st);
		return gs__err_wrap(g->ctx, rc, "synth: insert into %s",
				    table_names[which]);
	}
	sqlite3_reset(st);
	(*count)++;
	g->stats.total++;
	return GS_OK;
}

/* Scope predicates: in an unscoped run everything is written. */
static bool area_in(const struct gen *g, int a)
{
	return !g->dry && (!g->scoped || g->areas[a].in);
}

/* Community c's reference rows (grids, places, dwellings) are written. */
static bool comm_in(const struct gen *g, int c)
{
	return !g->dry && (!g->scoped || g->comms[c].in);
}

/* An org is written when its area is: its row references the area. */
static bool org_in(const struct gen *g, int o)
{
	return area_in(g, g->orgs[o].area);
}

/* ====================================================================== */
/* Reference rows: areas, orgs, dictionaries.                             */
/* ====================================================================== */

static int put_area(struct gen *g, int a, const char *name)
{
	sqlite3_stmt *st = g->st[ST_AREA];
	struct area *ar = &g->areas[a];

	if (!area_in(g, a))
		return GS_OK;
	bt(st, 1, ar->id);
	bt(st, 2, ar->code);
	bt(st, 3, area_levels[ar->level]);
	bt(st, 4, ar->parent >= 0 ? g->areas[ar->parent].id : NULL);
	bt(st, 5, name);
	return put(g, ST_AREA, &g->stats.admin_area);
}

/* A name "{word}{suffix}" that differs for every i below 48 * 6. */
static void area_name(char *out, size_t cap, unsigned i, const char *suffix)
{
	static const char *const mods[] = { "", "东", "西", "南", "北", "新" };
	struct tb b;

	tb_init(&b, out, cap);
	tb_put(&b, words[(i * 7 + 3) % NELEM(words)]);
	tb_put(&b, mods[(i / NELEM(words)) % NELEM(mods)]);
	tb_put(&b, suffix);
}

/* City, district, streets, communities: ids, codes, rows. */
static int gen_areas(struct gen *g)
{
	const struct profile *pf = g->pf;
	char name[64];
	int rc = GS_OK;
	size_t a = 0;

	next_id(g, g->areas[a].id);
	memcpy(g->areas[a].code, "510100000000", 13);
	g->areas[a].parent = -1;
	g->areas[a].level = AREA_CITY;
	rc = put_area(g, 0, "成都市");
	a++;
	next_id(g, g->areas[a].id);
	memcpy(g->areas[a].code, GS_SYNTH_DISTRICT_CODE "000000", 13);
	g->areas[a].parent = 0;
	g->areas[a].level = AREA_DISTRICT;
	if (rc == GS_OK)
		rc = put_area(g, 1, "锦城区");
	a++;
	for (unsigned s = 0; s < pf->streets && rc == GS_OK; s++, a++) {
		next_id(g, g->areas[a].id);
		memcpy(g->areas[a].code, GS_SYNTH_DISTRICT_CODE "000000", 13);
		digits(g->areas[a].code + 6, s + 1, 3);
		g->areas[a].parent = 1;
		g->areas[a].level = AREA_STREET;
		area_name(name, sizeof(name), s, "路街道");
		rc = put_area(g, (int)a, name);
	}
	for (unsigned c = 0; c < g->n_comms && rc == GS_OK; c++, a++) {
		unsigned s = c / pf->comms_per_street;
		struct comm *cm = &g->comms[c];

		next_id(g, g->areas[a].id);
		memcpy(g->areas[a].code, GS_SYNTH_DISTRICT_CODE "000000", 13);
		digits(g->areas[a].code + 6, s + 1, 3);
		digits(g->areas[a].code + 9, c % pf->comms_per_street + 1, 3);
		g->areas[a].parent = (int)(2 + s);
		g->areas[a].level = AREA_COMMUNITY;
		cm->area = (int)a;
		area_name(cm->name, sizeof(cm->name), c + 17, "社区");
		rc = put_area(g, (int)a, cm->name);
	}
	return rc;
}

/* The row of org o, if in scope. */
static int put_org(struct gen *g, int o, const char *name)
{
	sqlite3_stmt *st = g->st[ST_ORG];

	if (!org_in(g, o))
		return GS_OK;
	bt(st, 1, g->orgs[o].id);
	bt(st, 2, org_kinds[g->orgs[o].kind]);
	bt(st, 3, name);
	bt(st, 4, g->areas[g->orgs[o].area].id);
	return put(g, ST_ORG, &g->stats.org);
}

/* Append an org (its id is drawn whether or not the row is written). */
static int new_org(struct gen *g, int kind, int area, const char *name)
{
	int o = (int)g->n_orgs++;

	next_id(g, g->orgs[o].id);
	g->orgs[o].kind = (uint8_t)kind;
	g->orgs[o].area = area;
	return put_org(g, o, name);
}

/* District centre, departments, property companies, street centres,
 * community stations, in that order. */
static int gen_orgs(struct gen *g)
{
	char name[96];
	struct tb b;
	int rc;

	g->district_org = 0;
	rc = new_org(g, ORG_DISTRICT, 1, "锦城区社会治理指挥中心");
	g->first_dept = (int)g->n_orgs;
	for (unsigned i = 0; i < g->pf->n_depts && rc == GS_OK; i++)
		rc = new_org(g, ORG_DEPT, 1, departments[i]);
	g->first_property = (int)g->n_orgs;
	for (unsigned i = 0; i < g->pf->n_property && rc == GS_OK; i++) {
		tb_init(&b, name, sizeof(name));
		tb_put(&b, words[(i * 11 + 5) % NELEM(words)]);
		tb_put(&b, i % 2 ? "物业服务有限公司" : "物业管理有限公司");
		rc = new_org(g, ORG_PROPERTY, 1, name);
	}
	g->first_street_org = (int)g->n_orgs;
	for (unsigned s = 0; s < g->pf->streets && rc == GS_OK; s++) {
		area_name(name, sizeof(name), s, "路街道综治中心");
		rc = new_org(g, ORG_STREET, (int)(2 + s), name);
	}
	for (size_t c = 0; c < g->n_comms && rc == GS_OK; c++) {
		tb_init(&b, name, sizeof(name));
		tb_put(&b, g->comms[c].name);
		tb_put(&b, "党群服务中心");
		g->comms[c].org = (int)g->n_orgs;
		rc = new_org(g, ORG_STATION, g->comms[c].area, name);
	}
	return rc;
}

/* Categories, tag definitions, SLA policies and the transition rules of
 * the compiled-in state machine: written in full in every scope. */
static int gen_dictionaries(struct gen *g)
{
	const struct gs_transition *tr;
	size_t n_tr;
	int rc = GS_OK;

	for (size_t i = 0; i < N_CATS && rc == GS_OK; i++) {
		const struct cat *c = &cats[i];
		size_t len = strlen(c->code);
		unsigned top = (unsigned)(c->code[1] - '1');
		sqlite3_stmt *st = g->st[ST_CATEGORY];
		int parent = -1;

		next_id(g, g->cat_ids[i]);
		for (size_t j = 0; j < i; j++)
			if (strlen(cats[j].code) + 2 == len &&
			    strncmp(cats[j].code, c->code, len - 2) == 0)
				parent = (int)j;
		if (g->dry)
			continue;
		bt(st, 1, g->cat_ids[i]);
		bt(st, 2, c->code);
		bt(st, 3, parent >= 0 ? g->cat_ids[parent] : NULL);
		bi(st, 4, (int64_t)(len / 2));
		bt(st, 5, top_domain[top]);
		bt(st, 6, c->name);
		bt(st, 7, c->grade);
		bt(st, 8,
		   c->handler >= 0 ? g->orgs[g->first_dept + c->handler].id
				   : NULL);
		bi(st, 9, top <= 3);
		rc = put(g, ST_CATEGORY, &g->stats.category);
	}
	for (size_t i = 0; i < NELEM(tagdefs) && rc == GS_OK && !g->dry; i++) {
		sqlite3_stmt *st = g->st[ST_TAGDEF];

		bt(st, 1, tagdefs[i].code);
		bt(st, 2, tagdefs[i].name);
		bt(st, 3, tagdefs[i].grp);
		bt(st, 4, tagdefs[i].sensitivity);
		bi(st, 5, tagdefs[i].device_visible);
		bi(st, 6, tagdefs[i].interval_days);
		rc = put(g, ST_TAGDEF, &g->stats.tag_def);
	}
	for (size_t i = 0; i < NELEM(slas) && rc == GS_OK; i++) {
		sqlite3_stmt *st = g->st[ST_SLA];
		char id[GS_UUID_LEN];

		next_id(g, id);
		if (g->dry)
			continue;
		bt(st, 1, id);
		bt(st, 2, NULL);
		bt(st, 3, slas[i].grade);
		bt(st, 4, slas[i].stage);
		bi(st, 5, slas[i].minutes);
		bt(st, 6, slas[i].calendar);
		rc = put(g, ST_SLA, &g->stats.sla_policy);
	}
	/* One row per (from, to, role). A GW row of an assignee-only move
	 * says so in requires, since the table has no column for it. */
	tr = gs__transitions(&n_tr);
	for (size_t i = 0; i < n_tr && rc == GS_OK && !g->dry; i++) {
		for (unsigned bit = 1; bit <= GS_ROLE_SYS && rc == GS_OK;
		     bit <<= 1) {
			sqlite3_stmt *st = g->st[ST_RULE];
			char req[96];
			struct tb b;

			if (!(tr[i].roles & bit))
				continue;
			tb_init(&b, req, sizeof(req));
			if (tr[i].requires != NULL)
				tb_put(&b, tr[i].requires);
			if (tr[i].assignee_only && bit == GS_ROLE_GW) {
				if (b.len > 0)
					tb_put(&b, ",");
				tb_put(&b, "assignee_only");
			}
			bt(st, 1, tr[i].from);
			bt(st, 2, tr[i].to);
			bt(st, 3, gs__role_name(bit));
			bt(st, 4, b.len > 0 ? req : NULL);
			bi(st, 5, (tr[i].offline_roles & bit) != 0);
			rc = put(g, ST_RULE, &g->stats.transition_rule);
		}
	}
	return rc;
}

/* ====================================================================== */
/* Workers and assignments.                                               */
/* ====================================================================== */

/* A name for a person of the given sex and birth year. */
static void person_name(struct tb *b,
			struct gs_synth_rng *r,
			const char *sur,
			bool male,
			int birth_year)
{
	tb_put(b, sur);
	given_name(b, r, male, birth_year);
}

/* Ten digits after the leading "1": the phone starts "10" + 9 digits. */
static void phone_digits(struct gs_synth_rng *r, char out[12])
{
	out[0] = '1';
	out[1] = '0';
	for (int i = 2; i < 11; i++)
		out[i] = (char)('0' + gs__synth_rng_below(r, 10));
	out[11] = '\0';
}

/* Who a worker is: org, home community (-1 for street, district and
 * department staff), role, volunteer or not, age range. */
struct wspec {
	int org;
	int home;
	const char *role;
	bool volunteer;
	int age_lo, age_hi;
};

/*
 * One worker. *written tells whether its row went out (assignments of an
 * unwritten worker must not be written either): in a scoped run, its org
 * must be in scope and so must its home community (a property company is
 * district-wide, its volunteers are not). In pass 1 of a scoped run,
 * meeting the scope worker turns on capture for its assignments.
 */
static int gen_worker(struct gen *g,
		      char id[GS_UUID_LEN],
		      bool *written,
		      const struct wspec *w)
{
	sqlite3_stmt *st = g->st[ST_WORKER];
	bool male = gs__synth_rng_below(&g->rng, 2) == 0;
	int age = range(&g->rng, w->age_lo, w->age_hi);
	char name[64];
	char phone[12];
	char masked[12];
	struct tb b;

	next_id(g, id);
	tb_init(&b, name, sizeof(name));
	person_name(&b, &g->rng, surname(&g->rng), male,
		    (int)(1970 + g->start_day / 365) - age);
	phone_digits(&g->rng, phone);
	/* "10x****1234": the phone's own NUL ends it. */
	memcpy(masked, phone, 3);
	memset(masked + 3, '*', 4);
	memcpy(masked + 7, phone + 7, 5);
	g->capture = g->scoped && g->dry && strcmp(id, g->scope_worker) == 0;
	if (g->capture) {
		g->found = true;
		g->scope_org = w->org;
	}
	*written = org_in(g, w->org) && (w->home < 0 || comm_in(g, w->home));
	if (!*written)
		return GS_OK;
	bt(st, 1, id);
	bt(st, 2, name);
	bt(st, 3, masked);
	bt(st, 4, g->orgs[w->org].id);
	bt(st, 5, w->role);
	bi(st, 6, w->volunteer);
	return put(g, ST_WORKER, &g->stats.worker);
}

/* An assignment of a worker to grid, valid from the start date. In the
 * dry pass of a scoped run it records the scope worker's grids. */
static int gen_assign(struct gen *g,
		      const char *worker_id,
		      bool worker_written,
		      int grid,
		      const char *duty)
{
	sqlite3_stmt *st = g->st[ST_ASSIGNMENT];
	char id[GS_UUID_LEN];

	next_id(g, id);
	if (g->capture)
		g->grids[grid].assigned = true;
	if (!worker_written || !comm_in(g, g->grids[grid].community))
		return GS_OK;
	bt(st, 1, id);
	bt(st, 2, worker_id);
	bt(st, 3, g->grids[grid].id);
	bt(st, 4, duty);
	bt(st, 5, g->start_ts);
	return put(g, ST_ASSIGNMENT, &g->stats.assignment);
}

/* A community's staff: one responsible per micro-grid (40 % volunteers;
 * property-company volunteers belong to a property org), one full-time
 * GW per general grid as assistant of each of its micro-grids, and 4-6
 * CS, the first responsible for the community total grid. */
static int gen_comm_workers(struct gen *g, int c)
{
	struct comm *cm = &g->comms[c];
	char wid[GS_UUID_LEN];
	bool w;
	int rc = GS_OK;
	int n_cs;

	for (int m = 0; m < cm->n_micro && rc == GS_OK; m++) {
		bool vol = gs__synth_rng_ppm(&g->rng, 400000);
		int org = cm->org;

		/* 楼栋长, 物业, 党员, 外卖骑手: a quarter each. */
		if (vol && gs__synth_rng_below(&g->rng, 4) == 1 &&
		    g->pf->n_property > 0)
			org = g->first_property +
			      (int)gs__synth_rng_below(&g->rng,
						       g->pf->n_property);
		struct wspec ws = { org,          c, "GW", vol, vol ? 25 : 24,
				    vol ? 65 : 50 };

		rc = gen_worker(g, wid, &w, &ws);
		if (rc == GS_OK)
			rc = gen_assign(g, wid, w, cm->first_micro + m,
					"responsible");
	}
	for (int k = 0; k < cm->n_general && rc == GS_OK; k++) {
		int gen_grid = cm->first_general + k;

		struct wspec ws = { cm->org, c, "GW", false, 23, 50 };

		rc = gen_worker(g, wid, &w, &ws);
		for (int m = 0; m < cm->n_micro && rc == GS_OK; m++)
			if (g->grids[cm->first_micro + m].parent == gen_grid)
				rc = gen_assign(g, wid, w, cm->first_micro + m,
						"assistant");
	}
	n_cs = range(&g->rng, (int)g->pf->cs_min, (int)g->pf->cs_max);
	for (int k = 0; k < n_cs && rc == GS_OK; k++) {
		struct wspec ws = { cm->org, c, "CS", false, 26, 55 };

		rc = gen_worker(g, wid, &w, &ws);
		if (rc == GS_OK)
			rc = gen_assign(g, wid, w, cm->total,
					k == 0 ? "responsible" : "supervisor");
	}
	g->capture = false;
	return rc;
}

/* Street centres (supervising every community total grid of the street),
 * the district centre and the departments' handlers. */
static int gen_upper_workers(struct gen *g)
{
	const struct profile *pf = g->pf;
	char wid[GS_UUID_LEN];
	bool w;
	int rc = GS_OK;

	for (unsigned s = 0; s < pf->streets && rc == GS_OK; s++) {
		for (unsigned k = 0; k < pf->sc_per_street && rc == GS_OK;
		     k++) {
			struct wspec ws = { g->first_street_org + (int)s,
					    -1,
					    "SC",
					    false,
					    26,
					    55 };

			rc = gen_worker(g, wid, &w, &ws);
			for (unsigned c = 0;
			     c < pf->comms_per_street && rc == GS_OK; c++)
				rc = gen_assign(
					g, wid, w,
					g->comms[s * pf->comms_per_street + c]
						.total,
					"supervisor");
		}
	}
	g->capture = false;
	for (unsigned k = 0; k < pf->dc && rc == GS_OK; k++) {
		struct wspec ws = { g->district_org, -1, "DC", false, 26, 55 };

		rc = gen_worker(g, wid, &w, &ws);
	}
	for (unsigned d = 0; d < pf->n_depts && rc == GS_OK; d++) {
		for (unsigned k = 0; k < pf->dh_per_dept && rc == GS_OK; k++) {
			struct wspec ws = {
				g->first_dept + (int)d, -1, "DH", false, 26, 55
			};

			rc = gen_worker(g, wid, &w, &ws);
		}
	}
	g->capture = false;
	return rc;
}

/* ====================================================================== */
/* Grids.                                                                 */
/* ====================================================================== */

static int put_grid(struct gen *g, int gi, const char *name)
{
	sqlite3_stmt *st = g->st[ST_GRID];
	struct grid *gr = &g->grids[gi];
	struct comm *cm = &g->comms[gr->community];

	if (!comm_in(g, gr->community))
		return GS_OK;
	bt(st, 1, gr->id);
	bt(st, 2, gr->code);
	bt(st, 3, grid_levels[gr->level]);
	bt(st, 4, g->areas[cm->area].id);
	bt(st, 5, gr->parent >= 0 ? g->grids[gr->parent].id : NULL);
	bt(st, 6, name);
	bi(st, 7, gr->target);
	bd(st, 8, gr->lat);
	bd(st, 9, gr->lng);
	bt(st, 10, g->start_ts);
	return put(g, ST_GRID, &g->stats.grid);
}

/* Append a grid; code, target and position are the caller's to fill.
 * The scope flags (assigned, d_in) survive from the dry pass. */
static int new_grid(struct gen *g, int c, int level, int parent)
{
	int gi = (int)g->n_grids++;
	struct grid *gr = &g->grids[gi];

	GS_ASSERT(g->n_grids <= g->cap_grids);
	next_id(g, gr->id);
	gr->community = c;
	gr->parent = parent;
	gr->level = (uint8_t)level;
	gr->target = 0;
	return gi;
}

/*
 * A community's grids: the total grid (code = the community code),
 * general grids (+ 2 digits) and micro-grids (+ 3 digits), with the
 * micro-grids' household targets (trimmed normal, 30-100, mean 60)
 * summed upwards. Micro-grids are split evenly over the general grids.
 */
static int gen_grids(struct gen *g, int c, int n_micro)
{
	struct comm *cm = &g->comms[c];
	const char *code = g->areas[cm->area].code;
	int n_gen = range(&g->rng, (int)g->pf->gen_min, (int)g->pf->gen_max);
	char name[96];
	struct tb b;
	int rc = GS_OK;
	int m = 0;

	if (n_gen > n_micro)
		n_gen = n_micro;
	/* Positions (DESIGN.md): community centroids within 1.5 km of the
	 * district centre, general grids within 500 m of theirs, micro-grids
	 * within 200 m of their general grid's. Four road names per community
	 * give its addresses. */
	cm->lat = CENTRE_LAT;
	cm->lng = CENTRE_LNG;
	jitter(&g->rng, &cm->lat, &cm->lng, 1500);
	for (int i = 0; i < 4; i++) {
		tb_init(&b, cm->roads[i], sizeof(cm->roads[i]));
		tb_put(&b, PICK(&g->rng, words));
		tb_put(&b, PICK(&g->rng, road_suffix));
	}
	cm->total = new_grid(g, c, GRID_TOTAL, -1);
	memcpy(g->grids[cm->total].code, code, 13);
	g->grids[cm->total].lat = cm->lat;
	g->grids[cm->total].lng = cm->lng;
	cm->first_general = (int)g->n_grids;
	cm->n_general = n_gen;
	for (int k = 0; k < n_gen; k++) {
		int gi = new_grid(g, c, GRID_GENERAL, cm->total);

		memcpy(g->grids[gi].code, code, 12);
		digits(g->grids[gi].code + 12, (unsigned)k + 1, 2);
		g->grids[gi].code[14] = '\0';
		g->grids[gi].lat = cm->lat;
		g->grids[gi].lng = cm->lng;
		jitter(&g->rng, &g->grids[gi].lat, &g->grids[gi].lng, 500);
	}
	cm->first_micro = (int)g->n_grids;
	cm->n_micro = n_micro;
	for (int k = 0; k < n_gen; k++) {
		int per = n_micro / n_gen + (k < n_micro % n_gen);
		int ggi = cm->first_general + k;

		for (int j = 0; j < per; j++, m++) {
			int gi = new_grid(g, c, GRID_MICRO, ggi);
			struct grid *gr = &g->grids[gi];

			memcpy(gr->code, g->grids[ggi].code, 14);
			digits(gr->code + 14, (unsigned)j + 1, 3);
			gr->code[17] = '\0';
			gr->target = normal(&g->rng, 60, 15, 30, 100);
			gr->lat = g->grids[ggi].lat;
			gr->lng = g->grids[ggi].lng;
			jitter(&g->rng, &gr->lat, &gr->lng, 200);
			g->grids[ggi].target += gr->target;
			g->grids[cm->total].target += gr->target;
		}
	}
	/* Rows after the targets are known; parents first. */
	tb_init(&b, name, sizeof(name));
	tb_put(&b, cm->name);
	tb_put(&b, "总网格");
	rc = put_grid(g, cm->total, name);
	for (int k = 0; k < n_gen && rc == GS_OK; k++) {
		tb_init(&b, name, sizeof(name));
		tb_put(&b, cm->name);
		tb_put(&b, "第");
		tb_int(&b, k + 1);
		tb_put(&b, "网格");
		rc = put_grid(g, cm->first_general + k, name);
	}
	for (int k = 0; k < n_micro && rc == GS_OK; k++) {
		struct grid *gr = &g->grids[cm->first_micro + k];

		tb_init(&b, name, sizeof(name));
		tb_put(&b, cm->name);
		tb_put(&b, "第");
		tb_int(&b, gr->parent - cm->first_general + 1);
		tb_put(&b, "网格第");
		tb_int(&b, (gr->code[14] - '0') * 100 +
				   (gr->code[15] - '0') * 10 +
				   (gr->code[16] - '0'));
		tb_put(&b, "微网格");
		rc = put_grid(g, cm->first_micro + k, name);
	}
	return rc;
}

/* ====================================================================== */
/* Places and dwellings.                                                  */
/* ====================================================================== */

struct place_row {
	const char *id;
	const char *kind;
	const char *parent;
	int grid;
	const char *name;
	const char *addr;
	int floors; /* 0: NULL */
	int lift;   /* -1: NULL */
	const char *mgmt;
	double lat, lng;
};

/* A place of community c, if in scope. */
static int put_place(struct gen *g, int c, const struct place_row *p)
{
	sqlite3_stmt *st = g->st[ST_PLACE];

	if (!comm_in(g, c))
		return GS_OK;
	bt(st, 1, p->id);
	bt(st, 2, p->kind);
	bt(st, 3, p->parent);
	bt(st, 4, g->grids[p->grid].id);
	bt(st, 5, p->name);
	bt(st, 6, p->addr);
	if (p->floors > 0)
		bi(st, 7, p->floors);
	else
		sqlite3_bind_null(st, 7);
	if (p->lift >= 0)
		bi(st, 8, p->lift);
	else
		sqlite3_bind_null(st, 8);
	bt(st, 9, p->mgmt);
	bd(st, 10, p->lat);
	bd(st, 11, p->lng);
	return put(g, ST_PLACE, &g->stats.place);
}

/* A dwelling (room) of community c, if in scope. */
static int put_dwelling(struct gen *g,
			int c,
			const char *id,
			const char *place_id,
			int grid,
			const char *room,
			int floor,
			const char *usage)
{
	sqlite3_stmt *st = g->st[ST_DWELLING];

	if (!comm_in(g, c))
		return GS_OK;
	bt(st, 1, id);
	bt(st, 2, place_id);
	bt(st, 3, g->grids[grid].id);
	bt(st, 4, room);
	bi(st, 5, floor);
	bt(st, 6, usage);
	return put(g, ST_DWELLING, &g->stats.dwelling);
}

/* Street-front shops of a compound: one place and one commercial
 * dwelling each, no household. */
static int gen_shops(struct gen *g, int c, int gi, const char *road, int door)
{
	struct cursor *cu = &g->cur;
	int n = range(&g->rng, cu->arch == ARCH_VILLAGE ? 3 : 2, 8);
	int rc = GS_OK;

	for (int k = 0; k < n && rc == GS_OK; k++) {
		char id[GS_UUID_LEN];
		char did[GS_UUID_LEN];
		char name[64];
		char addr[96];
		struct place_row p = { 0 };
		struct tb b;

		next_id(g, id);
		next_id(g, did);
		tb_init(&b, name, sizeof(name));
		tb_put(&b, PICK(&g->rng, words));
		tb_put(&b, PICK(&g->rng, shop_names));
		tb_init(&b, addr, sizeof(addr));
		tb_put(&b, road);
		tb_int(&b, door);
		tb_put(&b, "号附");
		tb_int(&b, k + 1);
		tb_put(&b, "号");
		p.id = id;
		p.kind = "shop";
		p.parent = cu->compound_id;
		p.grid = gi;
		p.name = name;
		p.addr = addr;
		p.floors = 1;
		p.lift = 0;
		p.lat = cu->lat;
		p.lng = cu->lng;
		jitter(&g->rng, &p.lat, &p.lng, 50);
		rc = put_place(g, c, &p);
		if (rc == GS_OK)
			rc = put_dwelling(g, c, did, id, gi, "1", 1, "商用");
	}
	return rc;
}

/* A compound (小区 / 院落) of the next archetype, on the general grid of
 * the micro-grid that opens it. The demo alternates 老旧院落 and 商品房
 * so that its one community shows both. */
static int open_compound(struct gen *g, int c, int gi)
{
	uint16_t arch_w[N_ARCH];
	struct cursor *cu = &g->cur;
	struct comm *cm = &g->comms[c];
	const struct arch *a;
	const char *road;
	struct place_row p = { 0 };
	struct tb b;
	int rc;

	for (int i = 0; i < N_ARCH; i++)
		arch_w[i] = archs[i].weight;
	if (g->pf->demo)
		cu->arch = cu->arch == ARCH_OLD ? ARCH_COMMODITY : ARCH_OLD;
	else
		cu->arch = (int)pickw(&g->rng, arch_w, N_ARCH);
	a = &archs[cu->arch];
	cu->buildings_left = range(&g->rng, a->bmin, a->bmax);
	cu->b_no = 0;
	road = cm->roads[gs__synth_rng_below(&g->rng, 4)];
	cu->door += range(&g->rng, 2, 30);
	next_id(g, cu->compound_id);
	tb_init(&b, cu->addr, sizeof(cu->addr));
	tb_put(&b, road);
	tb_int(&b, cu->door);
	tb_put(&b, "号");
	/* Names by archetype: an old compound is known by its address
	 * (…号院), an urban village by its 组, estates by a pleasant word
	 * and 苑/园/花园…; resettlement estates are usually …家园. */
	tb_init(&b, cu->compound_name, sizeof(cu->compound_name));
	if (cu->arch == ARCH_OLD) {
		tb_put(&b, cu->addr);
		tb_put(&b, "院");
	} else if (cu->arch == ARCH_VILLAGE) {
		tb_put(&b, PICK(&g->rng, words));
		tb_put(&b, "村");
		tb_int(&b, range(&g->rng, 1, 12));
		tb_put(&b, "组");
	} else {
		tb_put(&b, PICK(&g->rng, words));
		tb_put(&b, cu->arch == ARCH_RESETTLE
				   ? "家园"
				   : PICK(&g->rng, estate_suffix));
	}
	cu->lat = cm->lat;
	cu->lng = cm->lng;
	jitter(&g->rng, &cu->lat, &cu->lng, 150);
	p.id = cu->compound_id;
	p.kind = "compound";
	p.grid = g->grids[gi].parent;
	p.name = cu->compound_name;
	p.addr = cu->addr;
	p.lift = -1;
	p.mgmt = mgmt_labels[pickw(&g->rng, a->mgmt_w, 3)];
	p.lat = cu->lat;
	p.lng = cu->lng;
	rc = put_place(g, c, &p);
	if (rc == GS_OK && gs__synth_rng_ppm(&g->rng, a->shops_ppm))
		rc = gen_shops(g, c, gi, road, cu->door);
	return rc;
}

/* The next building of the open compound (a new compound when it has no
 * building left), with the archetype's floors, units and flats. */
static int open_building(struct gen *g, int c, int gi)
{
	struct cursor *cu = &g->cur;
	const struct arch *a;
	struct place_row p = { 0 };
	char name[32];
	struct tb b;
	int rc = GS_OK;

	if (cu->arch < 0 || cu->buildings_left == 0)
		rc = open_compound(g, c, gi);
	if (rc != GS_OK)
		return rc;
	a = &archs[cu->arch];
	cu->buildings_left--;
	cu->b_no++;
	cu->floors = range(&g->rng, a->fmin, a->fmax);
	cu->units = range(&g->rng, a->umin, a->umax);
	cu->per_floor = range(&g->rng, a->hmin, a->hmax);
	cu->lift = cu->floors > a->lift_above;
	cu->u_no = 0;
	next_id(g, cu->building_id);
	tb_init(&b, name, sizeof(name));
	tb_int(&b, cu->b_no);
	tb_put(&b, cu->arch == ARCH_VILLAGE ? "号" : "栋");
	/* An old compound's name already is its address (…号院). */
	tb_init(&b, cu->building_addr, sizeof(cu->building_addr));
	if (cu->arch != ARCH_OLD)
		tb_put(&b, cu->addr);
	tb_put(&b, cu->compound_name);
	tb_put(&b, name);
	p.lat = g->comms[c].lat;
	p.lng = g->comms[c].lng;
	jitter(&g->rng, &p.lat, &p.lng, 150);
	cu->lat = p.lat;
	cu->lng = p.lng;
	p.id = cu->building_id;
	p.kind = "building";
	p.parent = cu->compound_id;
	p.grid = gi;
	p.name = name;
	p.addr = cu->building_addr;
	p.floors = cu->floors;
	p.lift = cu->lift;
	return put_place(g, c, &p);
}

/* The next unit (单元) of the open building, first floor, first flat. */
static int open_unit(struct gen *g, int c, int gi)
{
	struct cursor *cu = &g->cur;
	struct place_row p = { 0 };
	char name[32];
	char addr[160];
	struct tb b;
	int rc = GS_OK;

	if (cu->arch < 0 || cu->u_no >= cu->units)
		rc = open_building(g, c, gi);
	if (rc != GS_OK)
		return rc;
	cu->u_no++;
	cu->floor = 1;
	cu->slot = 1;
	next_id(g, cu->unit_id);
	tb_init(&b, name, sizeof(name));
	tb_int(&b, cu->u_no);
	tb_put(&b, "单元");
	tb_init(&b, addr, sizeof(addr));
	tb_put(&b, cu->building_addr);
	tb_put(&b, name);
	p.id = cu->unit_id;
	p.kind = "unit";
	p.parent = cu->building_id;
	p.grid = gi;
	p.name = name;
	p.addr = addr;
	p.floors = cu->floors;
	p.lift = cu->lift;
	p.lat = cu->lat;
	p.lng = cu->lng;
	return put_place(g, c, &p);
}

/* Nothing open yet, or every flat of the open unit handed out. */
static bool unit_done(const struct cursor *cu)
{
	return cu->arch < 0 || cu->floor > cu->floors;
}

/* Flats of the open unit not yet handed out. */
static int unit_left(const struct cursor *cu)
{
	return (cu->floors - cu->floor) * cu->per_floor +
	       (cu->per_floor - cu->slot + 1);
}

/* ====================================================================== */
/* Households, residents, tags.                                           */
/* ====================================================================== */

#define MAX_MEMBERS 8

struct member {
	char id[GS_UUID_LEN];
	const char *sur;
	int age;
	bool male;
	bool married; /* the spouse lives here too */
	uint8_t rel;
};

struct house {
	struct member m[MAX_MEMBERS];
	int n;
};

/* Append a member; ages are clamped to 0-100 (parents of old heads). */
static void add(struct house *h, int age, bool male, int rel, const char *sur)
{
	struct member *m = &h->m[h->n++];

	GS_ASSERT(h->n <= MAX_MEMBERS);
	m->age = age < 0 ? 0 : age > 100 ? 100 : age;
	m->male = male;
	m->rel = (uint8_t)rel;
	m->sur = sur;
	m->married = false;
}

/* Age from bands {lo, hi, weight}. */
struct band {
	uint8_t lo, hi;
	uint16_t w;
};

static int band_age(struct gs_synth_rng *r, const struct band *b, unsigned n)
{
	uint16_t w[8] = { 0 };

	GS_ASSERT(n <= NELEM(w));
	for (unsigned i = 0; i < n; i++)
		w[i] = b[i].w;
	b = &b[pickw(r, w, n)];
	return range(r, b->lo, b->hi);
}

static const struct band single_age[] = {
	{ 18, 29, 31 }, { 30, 44, 28 }, { 45, 59, 19 },
	{ 60, 79, 17 }, { 80, 95, 5 },
};
static const struct band couple_age[] = {
	{ 22, 34, 38 },
	{ 35, 59, 37 },
	{ 60, 79, 21 },
	{ 80, 92, 4 },
};
/* The youngest child of a family. */
static const struct band child_age[] = {
	{ 0, 5, 20 },
	{ 6, 14, 26 },
	{ 15, 17, 10 },
	{ 18, 32, 44 },
};

/* The head and, if married, the spouse (± 5 years, the other sex). The
 * family surname is the husband's. Returns the family surname. */
static const char *
couple(struct house *h, struct gs_synth_rng *r, int head_age, bool with_spouse)
{
	bool male = gs__synth_rng_ppm(r, 650000);
	const char *fam = surname(r);
	int spouse_age;

	if (!with_spouse) {
		add(h, head_age, male, REL_HEAD, fam);
		return fam;
	}
	add(h, head_age, male, REL_HEAD, male ? fam : surname(r));
	spouse_age = head_age + range(r, -5, 5);
	add(h, spouse_age < 20 ? 20 : spouse_age, !male, REL_SPOUSE,
	    male ? surname(r) : fam);
	h->m[0].married = true;
	h->m[1].married = true;
	return fam;
}

/* The head's parents: the father carries the head's surname. */
static void parents(struct house *h, struct gs_synth_rng *r, int n)
{
	int base = h->m[0].age + range(r, 22, 35);

	if (base > 100)
		base = 100 - (int)gs__synth_rng_below(r, 5);
	if (n == 1) {
		bool male = gs__synth_rng_ppm(r, 400000);

		add(h, base, male, REL_PARENT, male ? h->m[0].sur : surname(r));
		return;
	}
	add(h, base, true, REL_PARENT, h->m[0].sur);
	add(h, base + range(r, -5, 3), false, REL_PARENT, surname(r));
	h->m[h->n - 1].married = true;
	h->m[h->n - 2].married = true;
}

/*
 * Who lives in a household of the given size: family types per size,
 * chosen so that the whole population comes out near Chengdu's pyramid
 * (0-14 ≈ 13 %, 15-59 ≈ 69 %, 60+ ≈ 18 %). A 群租 flat holds 3-6
 * unrelated adults.
 */
static void
compose(struct house *h, struct gs_synth_rng *r, int size, bool group)
{
	uint32_t u = gs__synth_rng_below(r, 100);
	const char *fam;
	int c;
	int k;

	h->n = 0;
	if (group) {
		int n = range(r, 3, 6);

		for (int i = 0; i < n; i++)
			add(h, range(r, 19, 45), gs__synth_rng_ppm(r, 600000),
			    i == 0 ? REL_HEAD : REL_OTHER, surname(r));
		return;
	}
	switch (size) {
	case 1:
		couple(h, r, band_age(r, single_age, NELEM(single_age)), false);
		if (h->m[0].age >= 60)
			h->m[0].male = gs__synth_rng_ppm(r, 400000);
		return;
	case 2:
		if (u < 62) {
			couple(h, r, band_age(r, couple_age, NELEM(couple_age)),
			       true);
		} else if (u < 87) {
			c = range(r, 5, 50);
			fam = couple(h, r, c + range(r, 22, 38), false);
			add(h, c, gs__synth_rng_below(r, 2), REL_CHILD, fam);
		} else {
			couple(h, r, range(r, 20, 40), false);
			add(h, range(r, 20, 40), gs__synth_rng_below(r, 2),
			    REL_OTHER, surname(r));
		}
		return;
	case 3:
		if (u < 72) {
			c = band_age(r, child_age, NELEM(child_age));
			fam = couple(h, r, c + range(r, 22, 38), true);
			add(h, c, gs__synth_rng_below(r, 2), REL_CHILD, fam);
		} else if (u < 85) {
			couple(h, r, range(r, 30, 55), true);
			parents(h, r, 1);
		} else if (u < 95) {
			/* Grandparents raising a grandchild (隔代). */
			fam = couple(h, r, range(r, 55, 75), true);
			add(h, range(r, 0, 14), gs__synth_rng_below(r, 2),
			    REL_OTHER, fam);
		} else {
			c = band_age(r, child_age, NELEM(child_age));
			fam = couple(h, r, c + range(r, 24, 38), false);
			add(h, c, gs__synth_rng_below(r, 2), REL_CHILD, fam);
			add(h, c + range(r, 1, 6), gs__synth_rng_below(r, 2),
			    REL_CHILD, fam);
		}
		return;
	case 4:
		c = band_age(r, child_age, NELEM(child_age));
		if (u < 55) {
			int c2 = c + range(r, 1, 8);

			fam = couple(h, r, c2 + range(r, 22, 36), true);
			add(h, c, gs__synth_rng_below(r, 2), REL_CHILD, fam);
			add(h, c2, gs__synth_rng_below(r, 2), REL_CHILD, fam);
		} else if (u < 90) {
			fam = couple(h, r, c + range(r, 22, 38), true);
			add(h, c, gs__synth_rng_below(r, 2), REL_CHILD, fam);
			parents(h, r, 1);
		} else {
			couple(h, r, range(r, 30, 55), true);
			parents(h, r, 2);
		}
		return;
	default:
		/* Three generations: couple, one or both of the head's
		 * parents, children. */
		k = 1 + (int)gs__synth_rng_below(r, 2);
		c = range(r, 0, 14);
		fam = couple(h, r, c + (size - 2 - k) * 2 + range(r, 22, 34),
			     true);
		parents(h, r, k);
		for (int i = 0; i < size - 2 - k; i++)
			add(h, c + 2 * i, gs__synth_rng_below(r, 2), REL_CHILD,
			    fam);
		return;
	}
}

/* In-school labels by age; adults by a cohort table (older cohorts left
 * school earlier). *student: at university, which decides employment. */
static const char *education(struct gs_synth_rng *r, int age, bool *student)
{
	unsigned band;

	*student = false;
	if (age < 3)
		return NULL;
	if (age < 6)
		return "学龄前";
	if (age < 12)
		return "小学在读";
	if (age < 15)
		return "初中在读";
	if (age < 18)
		return "高中在读";
	if (age < 22 && gs__synth_rng_below(r, 2) == 0) {
		*student = true;
		return "大学在读";
	}
	band = age >= 70 ? 0 : age >= 50 ? 1 : age >= 30 ? 2 : 3;
	return educations[pickw(r, education_w[band], 8)];
}

static const char *
employment(struct gs_synth_rng *r, int age, bool male, bool student)
{
	if (age < 6)
		return "学龄前";
	if (age < 18 || student)
		return "在校学生";
	if (age >= 60 || (!male && age >= 55))
		return gs__synth_rng_ppm(r, 850000) ? "退休" : "无业";
	return work_labels[pickw(r, work_w, NELEM(work_w))];
}

/* Married when the spouse lives here; otherwise by age, widowhood
 * dominating after 60. */
static const char *marital(struct gs_synth_rng *r, const struct member *m)
{
	uint32_t u = gs__synth_rng_below(r, 100);

	if (m->married)
		return "已婚";
	if (m->age < 22)
		return "未婚";
	if (m->age < 30)
		return u < 85 ? "未婚" : u < 90 ? "离异" : "已婚";
	if (m->age < 60)
		return u < 25 ? "未婚" : u < 60 ? "已婚" : "离异";
	return u < 60 ? "丧偶" : u < 80 ? "已婚" : u < 95 ? "离异" : "未婚";
}

/*
 * An ID number: region, birth date, a 3-digit sequence with the gender
 * parity (odd for men), then the check character, wrong by default. The
 * sequence walks a per-(day, sex) counter through a permutation of the
 * 500 values of that parity, so numbers never repeat; past 500 people of
 * one sex born on one day (never at DESIGN.md's volumes) the region code's
 * last two digits move on.
 */
static void id_number(struct gen *g, char out[19], int64_t day, bool male)
{
	static const char checks[] = "0123456789X";
	char d[11];
	size_t idx = (size_t)(day - g->id_ctr_first_day) * 2 + male;
	unsigned k;
	unsigned start;
	unsigned v;
	char want;

	GS_ASSERT(day >= g->id_ctr_first_day && idx < g->id_ctr_days * 2);
	k = g->id_ctr[idx]++;
	start = (unsigned)((day % 500 + 500) % 500);
	v = ((start + (k % 500) * 7) % 500) * 2 + (male ? 1 : 0);
	day_text(d, day);
	memcpy(out, GS_SYNTH_DISTRICT_CODE, 6);
	if (k >= 500) {
		unsigned tail = (14 + k / 500) % 100;

		out[4] = (char)('0' + tail / 10);
		out[5] = (char)('0' + tail % 10);
	}
	memcpy(out + 6, d, 4);
	memcpy(out + 10, d + 5, 2);
	memcpy(out + 12, d + 8, 2);
	out[14] = (char)('0' + v / 100);
	out[15] = (char)('0' + v / 10 % 10);
	out[16] = (char)('0' + v % 10);
	want = gs__synth_id_check(out);
	if (g->valid_checksum) {
		out[17] = want;
	} else {
		unsigned pos = (unsigned)(strchr(checks, want) - checks);

		out[17] = checks[(pos + 1 + gs__synth_rng_below(&g->rng, 10)) %
				 11];
	}
	out[18] = '\0';
}

/* A tag drawn for a resident, written once the resident row exists. */
struct ptag {
	char id[GS_UUID_LEN];
	char from[GS_TIME_LEN];
	int tag;
	const char *grade;
};

#define MAX_TAGS 12

struct ptags {
	struct ptag t[MAX_TAGS];
	int n;
};

/* Draw a tag's id and start date now, so the draws do not depend on
 * whether (or when) the row is written. */
static void draw_tag(struct gen *g, struct ptags *p, int tag, const char *grade)
{
	struct ptag *t = &p->t[p->n++];

	GS_ASSERT(p->n <= MAX_TAGS);
	next_id(g, t->id);
	gs__time_format(t->from,
			g->start_ms - range(&g->rng, 30, 1500) * DAY_MS);
	t->tag = tag;
	t->grade = grade;
}

/*
 * The tags of member i at DESIGN.md's prevalence. hh_tag is the
 * household's assistance tag (carried by its head) or -1; care marks the
 * infant whose household wants childcare. *frail: 失能/失智 (the resident
 * then gets an encrypted health note).
 */
static void draw_tags(struct gen *g,
		      struct ptags *p,
		      const struct house *h,
		      int i,
		      int hh_tag,
		      bool care,
		      bool *frail)
{
	const struct member *m = &h->m[i];
	struct gs_synth_rng *r = &g->rng;
	bool all60 = true;

	for (int j = 0; j < h->n; j++)
		all60 = all60 && h->m[j].age >= 60;
	p->n = 0;
	*frail = false;
	if (m->age >= 80)
		draw_tag(g, p, TAG_E80, NULL);
	/* 独居 ≈ 12 % of 60+; most definitions count them as 空巢 too, and
	 * tagging 60 % of them both lands 空巢 near 25 % of 60+. */
	if (m->age >= 60 && h->n == 1)
		draw_tag(g, p, TAG_ALONE, NULL);
	if (m->age >= 60 && all60 && (h->n > 1 || gs__synth_rng_ppm(r, 600000)))
		draw_tag(g, p, TAG_NEST, NULL);
	if (m->age >= 60 && gs__synth_rng_ppm(r, 40000)) {
		*frail = true;
		draw_tag(g, p, TAG_EDIS, NULL);
	}
	if (gs__synth_rng_ppm(r, 40000)) {
		int type = (int)pickw(r, dis_w, NELEM(dis_w));
		int grade = (int)pickw(r, dis_grade_w, NELEM(dis_grade_w));

		draw_tag(g, p, TAG_DIS0 + type, dis_grades[grade]);
	}
	if (i == 0 && hh_tag >= 0)
		draw_tag(g, p, hh_tag, NULL);
	if (m->age < 18 && gs__synth_rng_ppm(r, 3000))
		draw_tag(g, p,
			 gs__synth_rng_below(r, 2) ? TAG_CHILD_LEFT
						   : TAG_CHILD_PLIGHT,
			 NULL);
	if (m->age >= 16 && m->age <= 59 && gs__synth_rng_ppm(r, 20000))
		draw_tag(g, p, TAG_NEED_JOB, NULL);
	if (care)
		draw_tag(g, p, TAG_NEED_CARE, NULL);
	/* 综治 groups: 0.43 % of 18-70 year olds ≈ 0.3 % of residents. */
	if (m->age >= 18 && m->age <= 70 && gs__synth_rng_ppm(r, 4300))
		draw_tag(g, p, TAG_ZZ0 + (int)pickw(r, zz_w, NELEM(zz_w)),
			 NULL);
}

/* The drawn tags of one resident, after its row (they reference it). */
static int put_tags(struct gen *g,
		    bool write,
		    const char *resident_id,
		    const struct ptags *p)
{
	sqlite3_stmt *st = g->st[ST_TAG];
	int rc = GS_OK;

	for (int i = 0; i < p->n && rc == GS_OK && write; i++) {
		const struct tagdef *t = &tagdefs[p->t[i].tag];

		/* Restricted tags never reach a device. */
		if (g->scoped && p->t[i].tag >= TAG_ZZ0)
			continue;
		bt(st, 1, p->t[i].id);
		bt(st, 2, resident_id);
		bt(st, 3, t->code);
		bt(st, 4, p->t[i].grade);
		bt(st, 5, t->source);
		bt(st, 6, p->t[i].from);
		bt(st, 7, GS_SYNTH_SEED_HLC);
		rc = put(g, ST_TAG, &g->stats.resident_tag);
	}
	return rc;
}

/*
 * One resident: birth date from the member's age, name by birth cohort,
 * the ID number sealed, HMAC'd and masked, a phone for most people over
 * 13, a health note for the frail, and the census-style attributes. All
 * draws happen before the write decision, so that both passes of a
 * scoped run stay in step; the HMAC (no draws) is skipped when nothing is
 * written.
 */
static int put_resident(struct gen *g,
			bool write,
			const char *hh_id,
			const struct member *m,
			const char *ethnicity,
			bool frail)
{
	struct gs_synth_rng *r = &g->rng;
	sqlite3_stmt *st = g->st[ST_RESIDENT];
	int64_t day = g->start_day - (int64_t)m->age * 365 - m->age / 4 -
		      (int64_t)gs__synth_rng_below(r, 365) - 1;
	char birth[11];
	char name[64];
	char id_no[19];
	char masked[19];
	char hmac[GS_SYNTH_HMAC_HEX_LEN];
	uint8_t id_enc[64];
	uint8_t phone_enc[64];
	uint8_t health_enc[96];
	size_t id_len;
	size_t phone_len = 0;
	size_t health_len = 0;
	const char *edu;
	const char *work;
	const char *mar;
	const char *presence;
	bool student;
	uint32_t u;
	struct tb b;
	int rc;

	day_text(birth, day);
	tb_init(&b, name, sizeof(name));
	person_name(&b, r, m->sur, m->male,
		    (birth[0] - '0') * 1000 + (birth[1] - '0') * 100 +
			    (birth[2] - '0') * 10 + (birth[3] - '0'));
	id_number(g, id_no, day, m->male);
	memcpy(masked, id_no, 4);
	memset(masked + 4, '*', 10);
	memcpy(masked + 14, id_no + 14, 4);
	masked[18] = '\0';
	rc = seal(g, id_enc, &id_len, id_no, "resident.id_no_enc");
	if (rc == GS_OK && m->age >= 14 && gs__synth_rng_ppm(r, 900000)) {
		char phone[12];

		phone_digits(r, phone);
		rc = seal(g, phone_enc, &phone_len, phone,
			  "resident.phone_enc");
	}
	if (rc == GS_OK && frail)
		rc = seal(g, health_enc, &health_len,
			  gs__synth_rng_below(r, 2) ? "失能，需长期照护"
						    : "失智，需家属陪护",
			  "resident.health_note_enc");
	edu = education(r, m->age, &student);
	work = employment(r, m->age, m->male, student);
	mar = marital(r, m);
	u = gs__synth_rng_below(r, 100);
	presence = u < 94 ? "present" : u < 99 ? "away" : "moved";
	if (rc != GS_OK || !write)
		return rc;
	if (hmac_hex(g->hmac, hmac, id_no) != GS_OK)
		return gs__err(g->ctx, GS_ERROR, "synth: HMAC failed");
	bt(st, 1, m->id);
	bt(st, 2, hh_id);
	bt(st, 3, name);
	bt(st, 4, m->male ? "男" : "女");
	bt(st, 5, birth);
	bt(st, 6, relations[m->rel]);
	bb(st, 7, id_enc, id_len);
	bt(st, 8, hmac);
	bt(st, 9, masked);
	bt(st, 10, ethnicity);
	bt(st, 11, edu);
	bt(st, 12, mar);
	bt(st, 13, work);
	bb(st, 14, phone_len > 0 ? phone_enc : NULL, phone_len);
	bb(st, 15, health_len > 0 ? health_enc : NULL, health_len);
	bt(st, 16, presence);
	bt(st, 17, GS_SYNTH_SEED_HLC);
	bt(st, 18, g->start_ts);
	return put(g, ST_RESIDENT, &g->stats.resident);
}

/* A household in a dwelling of usage 自住 / 出租 / 群租, its residents
 * and their tags. Ids are drawn first so that the head is known when the
 * household row is written (residents reference the household). */
static int
gen_household(struct gen *g, int gi, const char *dwelling_id, const char *usage)
{
	struct gs_synth_rng *r = &g->rng;
	sqlite3_stmt *st = g->st[ST_HOUSEHOLD];
	bool rented = strcmp(usage, "自住") != 0;
	bool write = !g->dry && (!g->scoped || g->grids[gi].d_in);
	struct house h;
	char id[GS_UUID_LEN];
	char visit[GS_TIME_LEN];
	uint8_t phone_enc[64];
	size_t phone_len = 0;
	const char *res;
	const char *tenure;
	const char *eth;
	bool visited;
	int hh_tag = -1;
	int care = -1;
	uint32_t u;
	int rc = GS_OK;

	/* Members first (the household row names its head), then the
	 * household's attributes, then the rows. Rented flats lean towards
	 * 流动 residence; tenure follows the dwelling's usage. */
	compose(&h, r, 1 + (int)pickw(r, size_w, NELEM(size_w)),
		strcmp(usage, "群租") == 0);
	next_id(g, id);
	for (int i = 0; i < h.n; i++)
		next_id(g, h.m[i].id);
	res = residence_types[pickw(r, rented ? residence_rent_w : residence_w,
				    4)];
	tenure = rented                        ? "租住"
		 : gs__synth_rng_ppm(r, 30000) ? "借住"
					       : "自有";
	eth = ethnicities[pickw(r, ethnicity_w, NELEM(ethnicity_w))];
	if (gs__synth_rng_ppm(r, 900000)) {
		char phone[12];

		phone_digits(r, phone);
		rc = seal(g, phone_enc, &phone_len, phone,
			  "household.phone_enc");
	}
	/* 80 % were visited in the half year before the start, in Chengdu's
	 * working hours (08:00-18:00 local is 00:00-10:00 UTC). */
	visited = gs__synth_rng_ppm(r, 800000);
	gs__time_format(visit,
			g->start_ms - range(r, 1, 180) * DAY_MS +
				range(r, 0, 10 * 3600 - 1) * INT64_C(1000));
	/* 低保 1.2 %, 特困 0.1 %, 低收入 1.5 % of households. */
	u = gs__synth_rng_below(r, 1000);
	hh_tag = u < 12   ? TAG_DIBAO
		 : u < 13 ? TAG_TEKUN
		 : u < 28 ? TAG_LOWINC
			  : -1;
	/* 托育 need: 30 % of households with a child under 3. */
	for (int i = 0; i < h.n; i++)
		if (h.m[i].age < 3 && care < 0)
			care = i;
	if (care >= 0 && !gs__synth_rng_ppm(r, 300000))
		care = -1;
	if (rc == GS_OK && write) {
		bt(st, 1, id);
		bt(st, 2, dwelling_id);
		bt(st, 3, g->grids[gi].id);
		bt(st, 4, h.m[0].id);
		bi(st, 5, h.n);
		bt(st, 6, res);
		bt(st, 7, tenure);
		bb(st, 8, phone_len > 0 ? phone_enc : NULL, phone_len);
		bt(st, 9, visited ? visit : NULL);
		bt(st, 10, GS_SYNTH_SEED_HLC);
		bt(st, 11, g->start_ts);
		rc = put(g, ST_HOUSEHOLD, &g->stats.household);
	}
	for (int i = 0; i < h.n && rc == GS_OK; i++) {
		struct ptags tags;
		bool frail;

		draw_tags(g, &tags, &h, i, hh_tag, care == i, &frail);
		rc = put_resident(g, write, id, &h.m[i], eth, frail);
		if (rc == GS_OK)
			rc = put_tags(g, write, h.m[i].id, &tags);
	}
	return rc;
}

/* One dwelling at the cursor and, unless vacant, its household. */
static int gen_dwelling(struct gen *g, int c, int gi)
{
	struct cursor *cu = &g->cur;
	/* 5 % vacant, 8 % rented, 1 % 群租 (DESIGN.md), the rest 自住. */
	uint32_t u = gs__synth_rng_below(&g->rng, 1000);
	const char *usage = u < 50    ? "空置"
			    : u < 130 ? "出租"
			    : u < 140 ? "群租"
				      : "自住";
	char id[GS_UUID_LEN];
	char room[16];
	struct tb b;
	int floor = cu->floor;
	int rc;

	next_id(g, id);
	tb_init(&b, room, sizeof(room));
	tb_int(&b, cu->floor * 100 + cu->slot);
	if (++cu->slot > cu->per_floor) {
		cu->slot = 1;
		cu->floor++;
	}
	rc = put_dwelling(g, c, id, cu->unit_id, gi, room, floor, usage);
	if (rc == GS_OK && u >= 50)
		rc = gen_household(g, gi, id, usage);
	return rc;
}

/* Points a grid worker looks after (其他点位): 3-5 per micro-grid, in the
 * compound the micro-grid ends in. */
static int gen_pois(struct gen *g, int c, int gi)
{
	static const char *const kinds[] = {
		"垃圾收集点", "消防栓",     "电动车充电桩", "监控点位",
		"宣传栏",     "智能快递柜", "微型消防站",
	};
	struct cursor *cu = &g->cur;
	int n = range(&g->rng, 3, 5);
	int rc = GS_OK;

	for (int k = 0; k < n && rc == GS_OK; k++) {
		struct place_row p = { 0 };
		char id[GS_UUID_LEN];
		char name[96];
		struct tb b;

		next_id(g, id);
		tb_init(&b, name, sizeof(name));
		tb_put(&b, cu->compound_name);
		tb_put(&b, PICK(&g->rng, kinds));
		p.id = id;
		p.kind = "poi";
		p.parent = cu->compound_id;
		p.grid = gi;
		p.name = name;
		p.addr = cu->addr;
		p.lift = -1;
		p.lat = cu->lat;
		p.lng = cu->lng;
		jitter(&g->rng, &p.lat, &p.lng, 60);
		rc = put_place(g, c, &p);
	}
	return rc;
}

/*
 * Fill micro-grid gi: dwellings enough for its household target (5 %
 * stay vacant), cut at a floor boundary, and carried on to the end of
 * the unit when only a few dwellings of it remain. A unit the cut falls
 * inside continues in the next micro-grid.
 */
static int gen_micro(struct gen *g, int c, int gi)
{
	struct cursor *cu = &g->cur;
	int need = (g->grids[gi].target * 100 + 94) / 95;
	int taken = 0;
	int rc = GS_OK;

	while (rc == GS_OK) {
		bool done = unit_done(cu);

		/* Stop half a floor early so that the cut lands on the target
		 * on average rather than above it. */
		if (taken + cu->per_floor / 2 >= need &&
		    (done || (cu->slot == 1 && unit_left(cu) > 6)))
			break;
		if (done)
			rc = open_unit(g, c, gi);
		if (rc == GS_OK)
			rc = gen_dwelling(g, c, gi);
		taken++;
	}
	if (rc == GS_OK)
		rc = gen_pois(g, c, gi);
	return rc;
}

/* A community: grids, then micro-grid by micro-grid its homes, then its
 * staff. The place cursor restarts per community (compounds never span
 * two). */
static int gen_community(struct gen *g, int c, int n_micro)
{
	int rc = gen_grids(g, c, n_micro);

	memset(&g->cur, 0, sizeof(g->cur));
	g->cur.arch = -1;
	for (int m = 0; m < n_micro && rc == GS_OK; m++) {
		int gi = g->comms[c].first_micro + m;

		/* The demo starts a compound per general grid, so that its
		 * few hundred households show both archetypes. */
		if (g->pf->demo && m > 0 &&
		    g->grids[gi].parent != g->grids[gi - 1].parent) {
			g->cur.buildings_left = 0;
			g->cur.u_no = g->cur.units;
			g->cur.floor = g->cur.floors + 1;
		}
		rc = gen_micro(g, c, gi);
	}
	if (rc == GS_OK)
		rc = gen_comm_workers(g, c);
	return rc;
}

/* ====================================================================== */
/* Passes and scope.                                                      */
/* ====================================================================== */

/* One full walk of the profile from the seed. */
static int run_pass(struct gen *g, bool dry)
{
	const struct profile *pf = g->pf;
	int rc;

	gs__synth_rng_seed(&g->rng, g->seed);
	g->id_seq = 0;
	g->dry = dry;
	g->capture = false;
	g->n_orgs = 0;
	g->n_grids = 0;
	memset(g->id_ctr, 0, g->id_ctr_days * 2 * sizeof(*g->id_ctr));
	memset(&g->stats, 0, sizeof(g->stats));
	rc = gen_areas(g);
	if (rc == GS_OK)
		rc = gen_orgs(g);
	if (rc == GS_OK)
		rc = gen_dictionaries(g);
	for (size_t c = 0; c < g->n_comms && rc == GS_OK; c++)
		rc = gen_community(g, (int)c,
				   (int)(pf->micro_total / g->n_comms +
					 (c < pf->micro_total % g->n_comms)));
	if (rc == GS_OK)
		rc = gen_upper_workers(g);
	return rc;
}

/* After the dry pass: which communities, areas and grids are in scope. */
static void scope_resolve(struct gen *g)
{
	bool any = false;

	for (size_t i = 0; i < g->n_grids; i++) {
		if (g->grids[i].assigned) {
			g->comms[g->grids[i].community].in = true;
			any = true;
		}
	}
	/* The worker's communities are those it has grids in ... */
	if (!any) {
		/* ... or, with no assignment (DC, DH), those under its org. */
		int a = g->orgs[g->scope_org].area;

		for (size_t c = 0; c < g->n_comms; c++) {
			int ca = g->comms[c].area;

			g->comms[c].in = ca == a || g->areas[ca].parent == a ||
					 g->areas[a].level <= AREA_DISTRICT;
		}
	}
	/* Areas: those communities and their ancestors (rows reference
	 * their parents). */
	for (size_t c = 0; c < g->n_comms; c++)
		for (int a = g->comms[c].area; g->comms[c].in && a >= 0;
		     a = g->areas[a].parent)
			g->areas[a].in = true;
	/* Parents precede children in grids[]: one pass settles it. */
	for (size_t i = 0; i < g->n_grids; i++) {
		struct grid *gr = &g->grids[i];

		gr->d_in = gr->assigned ||
			   (gr->parent >= 0 && g->grids[gr->parent].d_in);
	}
}

/* ====================================================================== */
/* Entry point.                                                           */
/* ====================================================================== */

static int parse_start(struct gen *g, const char *start)
{
	char text[32];
	int rc;

	if (start == NULL)
		start = "2025-01-01";
	if (strlen(start) == 10) {
		snprintf(text, sizeof(text), "%sT00:00:00Z", start);
		start = text;
	}
	rc = gs__time_parse(&g->start_ms, start);
	if (rc != GS_OK || g->start_ms < INT64_C(315532800000) ||
	    g->start_ms >= INT64_C(7258118400000))
		return gs__err(g->ctx, GS_EINVAL,
			       "synth: start must be a date from 1980 to 2199");
	g->start_day = g->start_ms / DAY_MS;
	gs__time_format(g->start_ts, g->start_ms);
	return GS_OK;
}

/* Every allocation of a run happens here, up front and sized by the
 * profile: generation itself never allocates, so an allocation failure
 * can only happen before the first row is written. */
static int alloc_state(struct gen *g)
{
	const struct profile *pf = g->pf;
	size_t n_comms = (size_t)pf->streets * pf->comms_per_street;

	g->n_comms = n_comms;
	g->n_areas = 2 + pf->streets + n_comms;
	g->cap_grids = n_comms * (1 + pf->gen_max) + pf->micro_total;
	/* Birth days from 105 years before the start up to it. */
	g->id_ctr_days = 105 * 366 + 1;
	g->id_ctr_first_day = g->start_day - (int64_t)105 * 366;
	g->areas = gs__calloc(g->ctx, g->n_areas, sizeof(*g->areas));
	g->orgs = gs__calloc(g->ctx,
			     1 + pf->n_depts + pf->n_property + pf->streets +
				     n_comms,
			     sizeof(*g->orgs));
	g->comms = gs__calloc(g->ctx, n_comms, sizeof(*g->comms));
	g->grids = gs__calloc(g->ctx, g->cap_grids, sizeof(*g->grids));
	g->cat_ids = gs__calloc(g->ctx, N_CATS, sizeof(*g->cat_ids));
	g->id_ctr = gs__calloc(g->ctx, g->id_ctr_days * 2, sizeof(*g->id_ctr));
	if (g->areas == NULL || g->orgs == NULL || g->comms == NULL ||
	    g->grids == NULL || g->cat_ids == NULL || g->id_ctr == NULL)
		return gs__err(g->ctx, GS_ENOMEM, "synth: out of memory");
	return GS_OK;
}

/* Frees a state in any stage of construction. */
static void free_state(struct gen *g)
{
	for (int i = 0; i < N_ST; i++)
		sqlite3_finalize(g->st[i]);
	crypto_close(g->aes, g->mac, g->hmac);
	gs__free(g->ctx, g->areas);
	gs__free(g->ctx, g->orgs);
	gs__free(g->ctx, g->comms);
	gs__free(g->ctx, g->grids);
	gs__free(g->ctx, g->cat_ids);
	gs__free(g->ctx, g->id_ctr);
	gs__free(g->ctx, g);
}

/* The database must be migrated and hold no generated rows. */
static int check_db(struct gen *g)
{
	sqlite3_stmt *st = NULL;
	int version = 0;
	int rc;

	rc = gs__db_schema_version(g->ctx, g->db, &version);
	if (rc != GS_OK)
		return rc;
	if (version != GS_SCHEMA_VERSION)
		return gs__err(g->ctx, GS_ESCHEMA,
			       "synth: database has schema version %d, want %d "
			       "(run gs__db_migrate first)",
			       version, GS_SCHEMA_VERSION);
	rc = gs__db_prepare(g->ctx, g->db, &st,
			    "SELECT EXISTS(SELECT 1 FROM admin_area)");
	if (rc == GS_OK && sqlite3_step(st) != SQLITE_ROW)
		rc = gs__err_from_sqlite(g->ctx, sqlite3_errcode(g->db), g->db);
	if (rc == GS_OK && sqlite3_column_int(st, 0) != 0)
		rc = gs__err(g->ctx, GS_EEXISTS,
			     "synth: database already holds admin areas");
	sqlite3_finalize(st);
	return rc;
}

/* See synth.h. Steps: check the database, allocate, key the crypto,
 * prepare one statement per table, the dry pass if scoped, then the
 * writing pass inside a savepoint. */
int gs__synth_generate(struct gs_ctx *ctx,
		       sqlite3 *db,
		       const struct gs_synth_opts *opts,
		       struct gs_synth_stats *stats_out)
{
	uint64_t t0 = gs__clock_mono_ns();
	struct gen *g = NULL;
	bool in_savepoint = false;
	int rc;

	GS_CHECK_ARG(ctx != NULL && db != NULL && opts != NULL);
	GS_CHECK_ARG(opts->version == GS_SYNTH_OPTS_VERSION);
	GS_CHECK_ARG(opts->profile == GS_SYNTH_DEMO ||
		     opts->profile == GS_SYNTH_DISTRICT);
	g = gs__calloc(ctx, 1, sizeof(*g));
	if (g == NULL)
		return gs__err(ctx, GS_ENOMEM, "synth: out of memory");
	g->ctx = ctx;
	g->db = db;
	g->pf = opts->profile == GS_SYNTH_DEMO ? &profile_demo
					       : &profile_district;
	g->seed = opts->seed;
	g->valid_checksum = opts->valid_checksum;
	g->scope_worker = opts->scope_worker_id;
	g->scoped = opts->scope_worker_id != NULL;
	rc = parse_start(g, opts->start);
	if (rc == GS_OK)
		rc = check_db(g);
	if (rc == GS_OK)
		rc = alloc_state(g);
	if (rc == GS_OK)
		rc = crypto_open(ctx, &g->aes, &g->mac, &g->hmac);
	for (int i = 0; i < N_ST && rc == GS_OK; i++)
		rc = gs__db_prepare(ctx, db, &g->st[i], insert_sql[i]);
	if (rc == GS_OK && g->scoped) {
		rc = run_pass(g, true);
		if (rc == GS_OK && !g->found)
			rc = gs__err(ctx, GS_ENOTFOUND,
				     "synth: worker %s is not generated by "
				     "profile %s seed %llu",
				     g->scope_worker, g->pf->name,
				     (unsigned long long)g->seed);
		if (rc == GS_OK)
			scope_resolve(g);
	}
	if (rc == GS_OK) {
		rc = gs__db_exec(ctx, db, "SAVEPOINT gs_synth");
		in_savepoint = rc == GS_OK;
	}
	if (rc == GS_OK)
		rc = run_pass(g, false);
	/* A savepoint is a transaction in autocommit mode and nests inside
	 * the caller's: either way a failure leaves no generated row. */
	if (in_savepoint) {
		if (rc == GS_OK) {
			rc = gs__db_exec(ctx, db, "RELEASE gs_synth");
		} else {
			sqlite3_exec(db, "ROLLBACK TO gs_synth", NULL, NULL,
				     NULL);
			sqlite3_exec(db, "RELEASE gs_synth", NULL, NULL, NULL);
		}
	}
	if (rc == GS_OK) {
		g->stats.elapsed_ms = (gs__clock_mono_ns() - t0) / 1000000u;
		GS_INFO(ctx,
			"generated profile %s seed %llu%s%s: %zu rows "
			"(%zu households, %zu residents, %zu tags, %zu "
			"workers) in %llu ms",
			g->pf->name, (unsigned long long)g->seed,
			g->scoped ? " for worker " : "",
			g->scoped ? g->scope_worker : "", g->stats.total,
			g->stats.household, g->stats.resident,
			g->stats.resident_tag, g->stats.worker,
			(unsigned long long)g->stats.elapsed_ms);
		if (stats_out != NULL)
			*stats_out = g->stats;
	}
	free_state(g);
	return rc;
}

/* ====================================================================== */
/* Worker listing.                                                        */
/* ====================================================================== */

int gs__synth_workers(struct gs_ctx *ctx,
		      sqlite3 *db,
		      gs_synth_worker_cb cb,
		      void *payload)
{
	/* One row per (worker, assignment), grouped here rather than with
	 * group_concat, whose order SQLite does not promise. */
	static const char sql[] =
		"SELECT w.id, w.role, w.is_volunteer, coalesce(o.kind, ''),"
		" g.code, a.duty FROM worker w"
		" LEFT JOIN org o ON o.id = w.org_id"
		" LEFT JOIN assignment a ON a.worker_id = w.id AND a.deleted = "
		"0"
		" LEFT JOIN grid g ON g.id = a.grid_id"
		" WHERE w.deleted = 0 ORDER BY w.id, g.code";
	sqlite3_stmt *st = NULL;
	struct gs_buf codes;
	struct gs_buf duties;
	char id[GS_UUID_LEN] = "";
	char role[8] = "";
	char kind[32] = "";
	bool vol = false;
	bool have = false;
	int rc;

	GS_CHECK_ARG(ctx != NULL && db != NULL && cb != NULL);
	gs__buf_init(&codes, ctx, (size_t)256 * 1024);
	gs__buf_init(&duties, ctx, (size_t)256 * 1024);
	rc = gs__db_prepare(ctx, db, &st, sql);
	while (rc == GS_OK) {
		const char *wid = NULL;
		int step = sqlite3_step(st);

		if (step == SQLITE_ROW)
			wid = (const char *)sqlite3_column_text(st, 0);
		else if (step != SQLITE_DONE)
			rc = gs__err_from_sqlite(ctx, step, db);
		if (rc == GS_OK && have &&
		    (wid == NULL || strcmp(wid, id) != 0)) {
			struct gs_synth_worker_info info = {
				id, role, vol, kind, "", "",
			};

			rc = gs__buf_cstr(&codes);
			if (rc == GS_OK)
				rc = gs__buf_cstr(&duties);
			if (rc == GS_OK) {
				info.grid_codes = (const char *)codes.data;
				info.duties = (const char *)duties.data;
				rc = cb(&info, payload);
			}
			codes.len = 0;
			duties.len = 0;
			have = false;
		}
		if (rc != GS_OK || wid == NULL)
			break;
		if (!have) {
			snprintf(id, sizeof(id), "%s", wid);
			snprintf(role, sizeof(role), "%s",
				 (const char *)sqlite3_column_text(st, 1));
			vol = sqlite3_column_int(st, 2) != 0;
			snprintf(kind, sizeof(kind), "%s",
				 (const char *)sqlite3_column_text(st, 3));
			have = true;
		}
		if (sqlite3_column_type(st, 4) != SQLITE_NULL) {
			const char *sep = codes.len > 0 ? "," : "";

			rc = gs__buf_printf(
				&codes, "%s%s", sep,
				(const char *)sqlite3_column_text(st, 4));
			if (rc == GS_OK)
				rc = gs__buf_printf(
					&duties, "%s%s", sep,
					(const char *)sqlite3_column_text(st,
									  5));
		}
	}
	sqlite3_finalize(st);
	gs__buf_fini(&codes);
	gs__buf_fini(&duties);
	return rc;
}

/* See synth.h; the id order is generation order for generated data. */
int gs__synth_pick_worker(struct gs_ctx *ctx,
			  sqlite3 *db,
			  const char *role,
			  const char *duty,
			  char out[GS_UUID_LEN])
{
	static const char sql[] =
		"SELECT w.id FROM worker w WHERE w.role = ?1 AND w.deleted = 0"
		" AND (?2 IS NULL OR EXISTS(SELECT 1 FROM assignment a"
		" WHERE a.worker_id = w.id AND a.duty = ?2 AND a.deleted = 0))"
		" ORDER BY w.id LIMIT 1";
	sqlite3_stmt *st = NULL;
	int step;
	int rc;

	GS_CHECK_ARG(ctx != NULL && db != NULL && role != NULL && out != NULL);
	rc = gs__db_prepare(ctx, db, &st, sql);
	if (rc != GS_OK)
		return rc;
	bt(st, 1, role);
	bt(st, 2, duty);
	step = sqlite3_step(st);
	if (step == SQLITE_ROW)
		snprintf(out, GS_UUID_LEN, "%s",
			 (const char *)sqlite3_column_text(st, 0));
	else if (step == SQLITE_DONE)
		rc = gs__err(ctx, GS_ENOTFOUND, "synth: no %s worker%s%s", role,
			     duty != NULL ? " with duty " : "",
			     duty != NULL ? duty : "");
	else
		rc = gs__err_from_sqlite(ctx, step, db);
	sqlite3_finalize(st);
	return rc;
}

/* ====================================================================== */
/* Workload text.                                                         */
/* ====================================================================== */

/* One slot of an issue template (see struct cat). *room remembers $H so
 * that $K can name the flat above it. */
static void slot(struct tb *b, struct gs_synth_rng *r, char k, int *room)
{
	switch (k) {
	case 'C':
		if (gs__synth_rng_below(r, 2) == 0) {
			tb_put(b, PICK(r, words));
			tb_put(b, PICK(r, estate_suffix));
		} else {
			tb_put(b, PICK(r, words));
			tb_put(b, "路");
			tb_int(b, range(r, 1, 300));
			tb_put(b, "号院");
		}
		break;
	case 'B':
		tb_int(b, range(r, 1, 24));
		tb_put(b, "栋");
		break;
	case 'U':
		tb_int(b, range(r, 1, 4));
		tb_put(b, "单元");
		break;
	case 'R':
		tb_put(b, PICK(r, words));
		tb_put(b, PICK(r, road_suffix));
		break;
	case 'N':
		tb_int(b, range(r, 1, 300));
		tb_put(b, "号");
		break;
	case 'H':
		*room = range(r, 1, 17) * 100 + range(r, 1, 6);
		tb_int(b, *room);
		tb_put(b, "室");
		break;
	case 'K':
		tb_int(b, *room > 0 ? *room + 100 : 201);
		tb_put(b, "室");
		break;
	case 'P': {
		bool male = gs__synth_rng_ppm(r, 400000);

		tb_put(b, surname(r));
		given_name(b, r, male, range(r, 1930, 1945));
		break;
	}
	case 'A':
		tb_int(b, range(r, 80, 95));
		break;
	default:
		tb_putn(b, "$", 1);
		tb_putn(b, &k, 1);
	}
}

/* Copy template t into b with every $X slot filled. A stray '$' at the
 * end is dropped. */
static void expand(struct tb *b, struct gs_synth_rng *r, const char *t)
{
	int room = 0;

	while (*t != '\0') {
		const char *d = strchr(t, '$');

		if (d == NULL) {
			tb_put(b, t);
			return;
		}
		tb_putn(b, t, (size_t)(d - t));
		if (d[1] == '\0')
			return;
		slot(b, r, d[1], &room);
		t = d + 2;
	}
}

/* Top level by DESIGN.md's mix, then a leaf under it uniformly. */
const char *gs__synth_issue_category(struct gs_synth_rng *r)
{
	char top = (char)('1' + pickw(r, top_w, NELEM(top_w)));
	uint32_t n = 0;
	uint32_t k;

	for (size_t i = 0; i < N_CATS; i++)
		n += cats[i].title != NULL && cats[i].code[1] == top;
	k = gs__synth_rng_below(r, n);
	for (size_t i = 0; i < N_CATS; i++) {
		if (cats[i].title == NULL || cats[i].code[1] != top)
			continue;
		if (k-- == 0)
			return cats[i].code;
	}
	return cats[2].code;
}

/* Independent of the category, as DESIGN.md gives one mix. */
const char *gs__synth_issue_grade(struct gs_synth_rng *r)
{
	uint32_t u = gs__synth_rng_below(r, 100);

	return u < 3 ? "red" : u < 30 ? "yellow" : "blue";
}

static const char *const issue_details[] = {
	"居民多次反映",       "已持续一周左右", "周边住户意见较大",
	"网格员现场核实属实", "现场已拍照留存", "影响居民正常生活",
	"存在较大安全隐患",   "夜间尤为明显",
};
static const char *const issue_requests[] = {
	"请相关部门尽快处理。",       "建议尽快安排人员到场处置。",
	"已先行劝导，需进一步处理。", "请物业和社区协同处置。",
	"已告知当事人，待后续跟进。",
};
static const char *const issue_more[] = {
	"涉及住户约二十户。",         "此前已向物业反映未果。",
	"网格员将持续关注处置进展。", "现场已设置临时警示标识。",
	"居民希望在一周内解决。",
};

/* Title and description from the leaf's templates; the description is
 * padded with stock sentences towards ~200 bytes. */
int gs__synth_issue(struct gs_synth_issue *out,
		    struct gs_synth_rng *r,
		    const char *category_code)
{
	const struct cat *c = NULL;
	struct tb b;
	int rc;

	GS_CHECK_ARG(out != NULL && r != NULL);
	if (category_code == NULL)
		category_code = gs__synth_issue_category(r);
	for (size_t i = 0; i < N_CATS && c == NULL; i++)
		if (cats[i].title != NULL &&
		    strcmp(cats[i].code, category_code) == 0)
			c = &cats[i];
	if (c == NULL)
		return GS_EINVAL;
	out->category_code = c->code;
	out->grade = gs__synth_issue_grade(r);
	tb_init(&b, out->title, sizeof(out->title));
	expand(&b, r, c->title);
	rc = tb_done(&b);
	tb_init(&b, out->description, sizeof(out->description));
	expand(&b, r, c->desc);
	tb_put(&b, "，");
	tb_put(&b, PICK(r, issue_details));
	tb_put(&b, "。");
	tb_put(&b, PICK(r, issue_requests));
	/* Grow towards ~200 bytes, as PERFORMANCE.md's issue rows carry. */
	for (int i = 0; i < 3 && b.len < 170; i++)
		tb_put(&b, PICK(r, issue_more));
	if (rc == GS_OK)
		rc = tb_done(&b);
	return rc;
}

static const char *const visit_open[] = {
	"例行入户走访",     "按计划上门回访",   "电话预约后入户走访",
	"结合网格巡查入户", "随同社区干部入户",
};
static const char *const visit_who[] = {
	"户主在家",     "老人独自在家", "家中仅有老人和小孩",
	"租户在家接待", "夫妻二人在家",
};
static const char *const visit_health[] = {
	"身体状况良好", "精神状态不错",         "自述血压偏高，已提醒按时服药",
	"行动略有不便", "近期刚出院，恢复尚可",
};
static const char *const visit_safety[] = {
	"燃气软管已更换，无老化",
	"电线敷设规范",
	"楼道无杂物",
	"阳台堆放纸箱较多，已提醒清理",
	"电动车未入户",
	"发现插线板串接使用，已现场劝导",
};
static const char *const visit_close[] = {
	"已登记相关需求",
	"暂无其他诉求",
	"已留下网格员联系方式",
	"约定下月再次回访",
	"反映楼道灯不亮，已记录上报",
};

/* Five clauses from short pools: 100-140 bytes, ~120 on average. */
int gs__synth_visit_summary(char *out, size_t cap, struct gs_synth_rng *r)
{
	struct tb b;

	GS_CHECK_ARG(out != NULL && r != NULL);
	tb_init(&b, out, cap);
	tb_put(&b, PICK(r, visit_open));
	tb_put(&b, "，");
	tb_put(&b, PICK(r, visit_who));
	tb_put(&b, "，");
	tb_put(&b, PICK(r, visit_health));
	tb_put(&b, "。");
	tb_put(&b, PICK(r, visit_safety));
	tb_put(&b, "，");
	tb_put(&b, PICK(r, visit_close));
	tb_put(&b, "。");
	return tb_done(&b);
}

/* The checklist with a few hazards, and the needs a visit records. */
int gs__synth_visit_answers(char *out, size_t cap, struct gs_synth_rng *r)
{
	static const char *const keys[] = { "gas", "wiring", "clutter",
					    "fire_lane" };
	/* Hazard and not-applicable rates per item, per mille. */
	static const uint16_t hazard[] = { 30, 50, 100, 40 };
	static const uint16_t na[] = { 50, 0, 0, 100 };
	static const char *const needs[] = { "养老", "就业", "托育", "助残" };
	static const uint16_t need_pm[] = { 100, 20, 20, 30 };
	struct tb b;
	bool first = true;

	GS_CHECK_ARG(out != NULL && r != NULL);
	tb_init(&b, out, cap);
	tb_put(&b, "{");
	for (size_t i = 0; i < NELEM(keys); i++) {
		uint32_t u = gs__synth_rng_below(r, 1000);

		tb_put(&b, i > 0 ? ",\"" : "\"");
		tb_put(&b, keys[i]);
		tb_put(&b, "\":\"");
		tb_put(&b, u < hazard[i]           ? "hazard"
			   : u < hazard[i] + na[i] ? "na"
						   : "ok");
		tb_put(&b, "\"");
	}
	tb_put(&b, ",\"needs\":[");
	for (size_t i = 0; i < NELEM(needs); i++) {
		if (gs__synth_rng_below(r, 1000) >= need_pm[i])
			continue;
		tb_put(&b, first ? "\"" : ",\"");
		tb_put(&b, needs[i]);
		tb_put(&b, "\"");
		first = false;
	}
	tb_put(&b, "]}");
	return tb_done(&b);
}

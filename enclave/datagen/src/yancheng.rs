//! Reference data for generated tables: the county-level districts of Yancheng (盐城), names,
//! phone prefixes, hospitals, roads. Realistic shapes only — every generated person is fictional.

/// A district: name, GB/T 2260 region code, population weight, income multiplier (×100).
pub struct District {
    pub name: &'static str,
    pub code: u32,
    pub weight: u32,
    pub income_pct: u32,
}

pub const DISTRICTS: &[District] = &[
    District {
        name: "亭湖区",
        code: 320902,
        weight: 70,
        income_pct: 125,
    },
    District {
        name: "盐都区",
        code: 320903,
        weight: 70,
        income_pct: 115,
    },
    District {
        name: "大丰区",
        code: 320904,
        weight: 68,
        income_pct: 105,
    },
    District {
        name: "响水县",
        code: 320921,
        weight: 50,
        income_pct: 85,
    },
    District {
        name: "滨海县",
        code: 320922,
        weight: 90,
        income_pct: 90,
    },
    District {
        name: "阜宁县",
        code: 320923,
        weight: 85,
        income_pct: 90,
    },
    District {
        name: "射阳县",
        code: 320924,
        weight: 80,
        income_pct: 95,
    },
    District {
        name: "建湖县",
        code: 320925,
        weight: 65,
        income_pct: 100,
    },
    District {
        name: "东台市",
        code: 320981,
        weight: 95,
        income_pct: 110,
    },
];

pub fn district_weights() -> Vec<u32> {
    DISTRICTS.iter().map(|d| d.weight).collect()
}

pub const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "高", "林", "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹", "彭", "曾",
    "肖", "田", "董", "袁", "潘", "于", "蒋", "蔡", "余", "杜", "叶", "程", "苏", "魏", "吕", "丁",
    "任", "沈", "姚", "卢", "姜", "崔", "钟", "谭", "陆", "汪", "范", "金", "石", "廖", "贾", "夏",
    "韦", "方", "白", "邹", "孟", "熊", "秦", "邱", "江", "尹", "薛", "顾", "毛", "龚", "邵", "万",
    "钱", "严", "戴", "孔", "汤", "季", "卞", "仇", "成", "单",
];

pub const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀", "霞", "平", "刚", "桂", "英", "华", "建", "文", "玲", "辉", "鹏", "宇", "浩", "婷",
    "雪", "琳", "晨", "欣", "博", "佳", "子", "梓", "涵", "轩", "一", "诺", "思", "雨", "俊", "宁",
    "海", "春", "兰", "国", "志", "红", "云", "亮", "峰", "燕", "萍", "凯",
];

/// Mobile prefixes of the three carriers.
pub const PHONE_PREFIXES: &[&str] = &[
    "134", "135", "136", "137", "138", "139", "147", "150", "151", "152", "157", "158", "159",
    "178", "182", "183", "187", "188", "198", "130", "131", "132", "155", "156", "166", "175",
    "176", "185", "186", "133", "153", "173", "177", "180", "181", "189", "199",
];

/// Hospitals, each with the index of its district in [`DISTRICTS`].
pub const HOSPITALS: &[(&str, usize)] = &[
    ("盐城市第一人民医院", 0),
    ("盐城市第三人民医院", 0),
    ("盐城市中医院", 1),
    ("盐城市妇幼保健院", 0),
    ("大丰区人民医院", 2),
    ("响水县人民医院", 3),
    ("滨海县人民医院", 4),
    ("阜宁县人民医院", 5),
    ("射阳县人民医院", 6),
    ("建湖县人民医院", 7),
    ("东台市人民医院", 8),
];

pub const DEPARTMENTS: &[&str] = &[
    "内科",
    "外科",
    "儿科",
    "妇产科",
    "急诊科",
    "骨科",
    "眼科",
    "口腔科",
    "皮肤科",
    "中医科",
];

/// ICD-10 codes common in outpatient care, with relative weights.
pub const DIAGNOSES: &[(&str, u32)] = &[
    ("J06.9", 30),
    ("I10", 20),
    ("E11.9", 12),
    ("K29.7", 10),
    ("M54.5", 8),
    ("J20.9", 8),
    ("N39.0", 5),
    ("S93.4", 4),
    ("H10.9", 4),
    ("K02.9", 4),
    ("L30.9", 4),
    ("O80", 2),
    ("I25.1", 3),
    ("F41.1", 2),
];

pub const ROADS: &[&str] = &[
    "世纪大道",
    "人民路",
    "开放大道",
    "解放路",
    "青年路",
    "希望大道",
    "文港路",
    "盐渎路",
    "新都路",
    "东进路",
    "建军路",
    "迎宾大道",
    "范公路",
    "黄海路",
    "通榆河路",
    "大庆路",
];

pub const VEHICLE_TYPES: &[(&str, u32)] = &[
    ("小型汽车", 70),
    ("新能源汽车", 15),
    ("大型汽车", 8),
    ("摩托车", 7),
];

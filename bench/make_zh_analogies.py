#!/usr/bin/env python3
"""Writes bench/data/zh_analogies.txt: a Chinese analogy set in the word2vec question format.

Two sections of (a, b) pairs written by hand — countries and their capitals, Chinese provinces
and their capitals, as People's Daily of January 1998 names them (汉城 for Seoul, 波恩 for the
German capital then) — kept only when both words occur at least 5 times as words of the
segmented corpus (`bert4rs prepare zh-words`, so every kept word is in a min_count=5
vocabulary); every ordered pair of kept pairs of a section is one question `a1 b1 a2 b2`.

    python3 bench/make_zh_analogies.py runs/w2v/pd.txt > bench/data/zh_analogies.txt
"""
import collections
import sys

SECTIONS = {
    "capital-country": """中国 北京 日本 东京 美国 华盛顿 英国 伦敦 法国 巴黎 俄罗斯 莫斯科 德国 波恩
        意大利 罗马 韩国 汉城 埃及 开罗 印度 新德里 泰国 曼谷 越南 河内 朝鲜 平壤 加拿大 渥太华
        澳大利亚 堪培拉 巴西 巴西利亚 伊拉克 巴格达 伊朗 德黑兰 菲律宾 马尼拉 印度尼西亚 雅加达
        马来西亚 吉隆坡 巴基斯坦 伊斯兰堡 土耳其 安卡拉 西班牙 马德里 葡萄牙 里斯本 希腊 雅典
        古巴 哈瓦那 阿根廷 布宜诺斯艾利斯 南非 比勒陀利亚 肯尼亚 内罗毕 蒙古 乌兰巴托 缅甸 仰光
        柬埔寨 金边 老挝 万象 尼泊尔 加德满都 瑞典 斯德哥尔摩 挪威 奥斯陆 芬兰 赫尔辛基 丹麦 哥本哈根
        荷兰 阿姆斯特丹 比利时 布鲁塞尔 奥地利 维也纳 瑞士 伯尔尼 波兰 华沙 匈牙利 布达佩斯
        乌克兰 基辅 叙利亚 大马士革 约旦 安曼 黎巴嫩 贝鲁特 沙特 利雅得 孟加拉国 达卡""",
    "province-capital": """广东 广州 湖北 武汉 湖南 长沙 四川 成都 河南 郑州 河北 石家庄 山东 济南
        江苏 南京 浙江 杭州 福建 福州 辽宁 沈阳 吉林 长春 黑龙江 哈尔滨 陕西 西安 山西 太原
        云南 昆明 贵州 贵阳 江西 南昌 安徽 合肥 甘肃 兰州 青海 西宁 海南 海口 广西 南宁
        内蒙古 呼和浩特 新疆 乌鲁木齐 西藏 拉萨 宁夏 银川""",
}


def main():
    counts = collections.Counter(w for line in open(sys.argv[1], encoding="utf-8") for w in line.split())
    for name, text in SECTIONS.items():
        words = text.split()
        pairs = [(words[i], words[i + 1]) for i in range(0, len(words), 2)]
        kept = [p for p in pairs if counts[p[0]] >= 5 and counts[p[1]] >= 5]
        print(f"{name}: {len(kept)} of {len(pairs)} pairs kept", file=sys.stderr)
        print(f": {name}")
        for a in kept:
            for b in kept:
                if a != b:
                    print(f"{a[0]} {a[1]} {b[0]} {b[1]}")


if __name__ == "__main__":
    main()

// The demonstration company site around the chat widget. The page keeps its
// own language (the consoles' i18n module and setting); the widget follows
// it, and the page follows a switch made inside the widget.

import { currentLanguage, onLanguage, register, setLanguage, translate } from "../common/i18n.js";

register({
  en: {
    "demo.page_title": "Example Telecom — fibre and mobile",
    "demo.brand": "Example Telecom",
    "demo.nav": "Main",
    "demo.nav_plans": "Plans",
    "demo.nav_mobile": "Mobile",
    "demo.nav_support": "Support",
    "demo.language": "Change language",
    "demo.kicker": "New: gigabit fibre in your street",
    "demo.hero_title": "Fibre that keeps up with you",
    "demo.hero_text":
      "Unlimited data, no lock-in contracts, and real people ready to help when you need them.",
    "demo.see_plans": "See plans",
    "demo.ask": "Ask us anything",
    "demo.plans_title": "Plans for every home",
    "demo.plan1": "Fibre 300",
    "demo.plan1_price": "¥99 a month",
    "demo.plan1_a": "300 Mbit/s down and up",
    "demo.plan1_b": "Wi-Fi router included",
    "demo.no_contract": "No contract; cancel any month",
    "demo.popular": "Most popular",
    "demo.plan2": "Fibre 1000",
    "demo.plan2_price": "¥149 a month",
    "demo.plan2_a": "1 Gbit/s for the whole family",
    "demo.plan2_b": "Mesh Wi-Fi for every room",
    "demo.plan3": "Mobile Unlimited",
    "demo.plan3_price": "¥59 a month",
    "demo.plan3_a": "Unlimited calls and data",
    "demo.plan3_b": "Keep your number",
    "demo.plan3_c": "Free SIM delivery",
    "demo.support_title": "Help when you need it",
    "demo.chat_title": "Chat",
    "demo.chat_text":
      "Use the chat button in the corner of any page. Our agents answer every day from 8:00 to 22:00.",
    "demo.call_title": "Call",
    "demo.call_text":
      "Dial 400 800 1234 and choose from the menu, or leave your number for a callback.",
    "demo.embed_title": "For developers",
    "demo.embed_text":
      "This page embeds the chat widget the way any website would, with one script tag:",
    "demo.footer":
      "Example Telecom is a fictional company: this is the demonstration page of the contact center's chat widget.",
  },
  "zh-CN": {
    "demo.page_title": "示例电信 — 光纤宽带与移动业务",
    "demo.brand": "示例电信",
    "demo.nav": "主菜单",
    "demo.nav_plans": "套餐",
    "demo.nav_mobile": "手机",
    "demo.nav_support": "客户服务",
    "demo.language": "切换语言",
    "demo.kicker": "新上线：千兆光纤已覆盖您的街区",
    "demo.hero_title": "跟得上您节奏的光纤宽带",
    "demo.hero_text": "流量不限，无需签约，需要帮助时随时有真人客服为您服务。",
    "demo.see_plans": "查看套餐",
    "demo.ask": "有问题？问我们",
    "demo.plans_title": "适合每个家庭的套餐",
    "demo.plan1": "光纤 300 兆",
    "demo.plan1_price": "每月 99 元",
    "demo.plan1_a": "上下行均为 300 兆",
    "demo.plan1_b": "赠送无线路由器",
    "demo.no_contract": "无合约，可随时取消",
    "demo.popular": "最受欢迎",
    "demo.plan2": "光纤 1000 兆",
    "demo.plan2_price": "每月 149 元",
    "demo.plan2_a": "千兆网速，全家共享",
    "demo.plan2_b": "全屋无线覆盖",
    "demo.plan3": "手机无限套餐",
    "demo.plan3_price": "每月 59 元",
    "demo.plan3_a": "通话和流量不限量",
    "demo.plan3_b": "保留原号码",
    "demo.plan3_c": "免费送卡上门",
    "demo.support_title": "需要时随时为您服务",
    "demo.chat_title": "在线客服",
    "demo.chat_text": "点击任意页面角落的客服按钮即可咨询。客服每天 8:00 至 22:00 在线。",
    "demo.call_title": "电话客服",
    "demo.call_text": "拨打 400 800 1234，按语音菜单选择服务，也可以留下号码等待回访。",
    "demo.embed_title": "开发者须知",
    "demo.embed_text": "本页面和其他网站一样，只用一个脚本标签嵌入聊天窗口：",
    "demo.footer": "示例电信是一家虚构的公司：本页面用于演示呼叫中心的在线客服窗口。",
  },
});

function showLanguage(lang) {
  document.body.dataset.language = lang;
  window.CCWidget?.setLanguage(lang);
}

translate(document);
showLanguage(currentLanguage());
onLanguage(showLanguage);

document.getElementById("demo-language").addEventListener("click", () => {
  setLanguage(currentLanguage() === "en" ? "zh-CN" : "en");
});
document.getElementById("demo-chat").addEventListener("click", () => window.CCWidget?.open());

// The widget loads asynchronously, possibly after this module has run.
window.addEventListener("ccwidget:ready", () => window.CCWidget.setLanguage(currentLanguage()));
window.addEventListener("ccwidget:language", (event) => setLanguage(event.detail.language));

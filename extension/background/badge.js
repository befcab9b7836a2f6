/* The toolbar icon: what status.js's iconView() says (a grey icon with "off" when not watching, the warnings
 * count otherwise), and the per-tab mark on a rule-host page that loaded while consentwatch was not watching. */

export const ICONS = Object.freeze({
  on: { 16: 'icons/icon-16.png', 32: 'icons/icon-32.png', 48: 'icons/icon-48.png' },
  off: { 16: 'icons/icon-off-16.png', 32: 'icons/icon-off-32.png', 48: 'icons/icon-off-48.png' },
});

export async function renderIcon(action, view) {
  try {
    await action.setBadgeText({ text: view.text });
    await action.setBadgeBackgroundColor({ color: view.color });
    if (action.setBadgeTextColor) await action.setBadgeTextColor({ color: '#FFFFFF' });
    await action.setTitle({ title: view.title });
    await action.setIcon({ path: view.grey ? ICONS.off : ICONS.on });
  } catch (e) {
    console.warn('consentwatch: badge', e);
  }
}

/** mark: tabMark()'s answer; null takes the tab's own values away (the tab shows the global icon again). */
export async function markTab(action, tabId, mark, globalColor = '#B45309') {
  try {
    if (mark) {
      await action.setBadgeText({ tabId, text: mark.text });
      await action.setBadgeBackgroundColor({ tabId, color: mark.color });
      await action.setTitle({ tabId, title: mark.title });
    } else {
      await action.setBadgeText({ tabId, text: null });
      await action.setBadgeBackgroundColor({ tabId, color: globalColor });
    }
  } catch (e) {
    console.warn('consentwatch: tab mark', e); // the tab may be gone
  }
}

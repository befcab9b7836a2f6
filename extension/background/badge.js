/* The toolbar badge: the number of active warnings, and a title that says what the state is. */

export function badgeView(state) {
  const n = state.warnings.length;
  const showCount = n > 0 && state.conn !== 'unpaired';
  let title = 'consentwatch';
  if (state.conn === 'unpaired') title += ': not paired yet';
  else if (state.conn === 'down') title += ': not running';
  else if (n === 1) title += ': 1 AI-training warning';
  else if (n > 1) title += `: ${n} AI-training warnings`;
  else if (state.conn === 'connected') title += ': all clear';
  return { text: showCount ? String(n) : '', title };
}

export async function renderBadge(action, state) {
  const { text, title } = badgeView(state);
  try {
    await action.setBadgeText({ text });
    await action.setBadgeBackgroundColor({ color: '#B45309' });
    if (action.setBadgeTextColor) await action.setBadgeTextColor({ color: '#FFFFFF' });
    await action.setTitle({ title });
  } catch (e) {
    console.warn('consentwatch: badge', e);
  }
}
